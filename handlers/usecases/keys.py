"""API keys made at run time: create one (the key is shown once), list them, revoke one.

A new key is random (:func:`~handlers.domain.tenancy.new_key`); the store gets its sha256 and
an id made from it, never the key, so the key cannot be shown again: whoever creates it keeps it.
"""

from __future__ import annotations

from typing import Any

from handlers.base.errors import ConfigurationError, InvalidRequest, Violation
from handlers.base.logs import get_logger
from handlers.domain.jobs import rfc3339
from handlers.domain.tenancy import ApiKey, Role, check_tenant, key_digest, key_id_of, new_key
from handlers.ports import KeyStore

__all__ = ["ROLES", "create_key", "key_record", "list_keys", "revoke_key"]

log = get_logger(__name__)
ROLES = ", ".join(role.value for role in Role)


def create_key(store: KeyStore, tenant: str, role: str, now: float, *, by: str = "") -> tuple[ApiKey, str]:
    """A new key of ``tenant`` with ``role``, stored by its digest: the stored key and the key itself.

    ``InvalidRequest`` names ``tenant`` and ``role`` when either is not acceptable, both at once.
    ``by`` names who asked (a key id, or ``cli``) in the log line."""
    problems = [*_tenant_problems(tenant), *_role_problems(role)]
    if problems:
        raise InvalidRequest(problems)
    plain = new_key()
    digest = key_digest(plain)
    key = ApiKey(id=key_id_of(digest), tenant=tenant, role=Role(role), digest=digest, created_at=now)
    store.add_key(key)
    log.info("key.created", key_id=key.id, tenant=key.tenant, role=key.role.value, by=by)
    return key, plain


def list_keys(store: KeyStore) -> list[ApiKey]:
    """Every stored key, revoked ones too, oldest first."""
    return store.keys()


def revoke_key(store: KeyStore, key_id: str, now: float, *, by: str = "") -> ApiKey:
    """Revoke key ``key_id`` from ``now`` on (a revoked key stays revoked at its first time); ``NotFound`` if none.

    ``by`` names who asked in the log line."""
    key = store.revoke_key(key_id, now)
    log.info("key.revoked", key_id=key.id, tenant=key.tenant, role=key.role.value, by=by)
    return key


def key_record(key: ApiKey) -> dict[str, Any]:
    """A key as the API and the CLI show it: id, tenant, role and times (RFC 3339), never the digest."""
    return {"id": key.id, "tenant": key.tenant, "role": key.role.value, "created_at": rfc3339(key.created_at),
            "revoked_at": None if key.revoked_at is None else rfc3339(key.revoked_at)}


def _tenant_problems(tenant: str) -> list[Violation]:
    try:
        check_tenant(tenant, "tenant")
    except ConfigurationError as exc:
        return [Violation("tenant", "invalid_tenant", exc.message.removeprefix("tenant: "))]
    return []


def _role_problems(role: str) -> list[Violation]:
    if role in {r.value for r in Role}:
        return []
    return [Violation("role", "invalid_choice", f"role {role!r} is not one of {ROLES}")]
