"""Tenants, roles and API keys.

Every API key belongs to a tenant and has a role:

* ``admin``: everything, for every tenant (key management, dead-letter redrive);
* ``submitter``: creates jobs and reads its own tenant's jobs;
* ``reader``: reads its own tenant's jobs.

Keys come from configuration (``RELAY_API_KEYS`` for submitters and ``RELAY_ADMIN_KEYS`` for
admins, each ``TENANT:KEY`` or a bare ``KEY`` of the tenant ``default``) or are made at run time
and stored as their sha256 only (:class:`ApiKey`). A caller is known by its
:class:`Principal`: tenant, role and key id, never the key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from handlers.base.errors import ConfigurationError

__all__ = ["DEFAULT_TENANT", "TENANT_PATTERN", "ApiKey", "ConfiguredKey", "Principal", "Role", "check_tenant",
           "key_digest", "key_id_of", "new_key", "parse_keys"]

DEFAULT_TENANT = "default"
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")
_KEY_PREFIX = "sr_"
_KEY = re.compile(r"^[\x21-\x2b\x2d-\x7e]{1,256}$")  # printable ASCII, no space or comma


class Role(StrEnum):
    ADMIN = "admin"
    SUBMITTER = "submitter"
    READER = "reader"

    @property
    def submits(self) -> bool:
        return self is not Role.READER


def key_digest(key: str) -> str:
    """The sha256 hex digest a key is stored and looked up by."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(digest: str) -> str:
    """A key's public id: the first 12 hex digits of its digest (safe to log and to show)."""
    return f"key_{digest[:12]}"


def check_tenant(tenant: str, where: str) -> str:
    """``tenant`` if it is a valid tenant name, else one line naming ``where`` and the rule."""
    if not TENANT_PATTERN.match(tenant):
        raise ConfigurationError(f"{where}: tenant {tenant!r} must be 1-63 of a-z 0-9 _ - (starting with a-z or 0-9)")
    return tenant


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a tenant and a role; ``key_id`` names the key in logs."""

    tenant: str
    role: Role
    key_id: str

    @property
    def admin(self) -> bool:
        return self.role is Role.ADMIN

    def sees(self, tenant: str) -> bool:
        """Whether this caller may see a job, upload or event of ``tenant``."""
        return self.admin or tenant == self.tenant


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: its id, tenant, role and sha256 digest; ``revoked_at`` once revoked."""

    id: str
    tenant: str
    role: Role
    digest: str
    created_at: float
    revoked_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def principal(self) -> Principal:
        return Principal(self.tenant, self.role, self.id)


@dataclass(frozen=True, slots=True)
class ConfiguredKey:
    """A key from configuration: the key itself stays in memory, only its digest is compared."""

    tenant: str
    role: Role
    digest: str

    def principal(self) -> Principal:
        return Principal(self.tenant, self.role, key_id_of(self.digest))


def new_key() -> str:
    """A fresh random key (``sr_`` and 43 URL-safe characters)."""
    return _KEY_PREFIX + secrets.token_urlsafe(32)


def _entry(number: int, entry: str, role: Role, variable: str) -> ConfiguredKey:
    tenant, sep, key = entry.strip().partition(":") if ":" in entry else ("", "", entry.strip())
    named = f"{variable}: entry {number} ({tenant + sep if sep else ''}…)"  # never any of the key itself
    if sep and not tenant:
        raise ConfigurationError(f"{named} has an empty tenant; use TENANT:KEY or KEY")
    tenant = check_tenant(tenant, named) if sep else DEFAULT_TENANT
    if not _KEY.match(key):
        raise ConfigurationError(f"{named} needs a key of 1-256 printable characters without spaces")
    return ConfiguredKey(tenant, role, key_digest(key))


def parse_keys(text: str, role: Role, variable: str) -> list[ConfiguredKey]:
    """``acme:KEY1, KEY2`` as configured keys of ``role``: ``KEY2`` is the tenant ``default``'s."""
    keys = [_entry(n, e, role, variable) for n, e in enumerate((e for e in text.split(",") if e.strip()), 1)]
    seen: set[str] = set()
    for key in keys:
        if key.digest in seen:
            raise ConfigurationError(f"{variable}: the same key is listed twice")
        seen.add(key.digest)
    return keys
