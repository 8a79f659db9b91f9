"""Bearer API keys: who is calling (:class:`~handlers.domain.tenancy.Principal`), and what it may do.

A presented key is hashed once and compared in constant time against every configured key
(``RELAY_API_KEYS`` for submitters, ``RELAY_ADMIN_KEYS`` for admins); a key that is not
configured is looked up by its digest in the key store (keys made at run time). A revoked key
is answered exactly like an unknown one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from starlette.requests import HTTPConnection

from handlers.base.errors import Forbidden, Unauthorized
from handlers.domain.tenancy import ConfiguredKey, Principal, Role, parse_keys
from handlers.ports import KeyStore

__all__ = ["CALLER", "TENANT", "ApiKeys", "remember"]

CALLER = "caller"  # the key in ``scope["state"]`` that names the caller's key id for the access log
TENANT = "tenant"  # and the caller's tenant


class ApiKeys:
    """The keys the API accepts: ``submitters`` and ``admins`` entries (``TENANT:KEY`` or ``KEY``), and
    the ``store`` of keys made at run time, if any."""

    def __init__(self, submitters: Sequence[str] = (), *, admins: Sequence[str] = (),
                 store: KeyStore | None = None) -> None:
        self._configured: tuple[ConfiguredKey, ...] = (
            *parse_keys(",".join(admins), Role.ADMIN, "RELAY_ADMIN_KEYS"),
            *parse_keys(",".join(submitters), Role.SUBMITTER, "RELAY_API_KEYS"))
        self._digests = tuple(bytes.fromhex(key.digest) for key in self._configured)
        self._store = store

    def principal(self, request: HTTPConnection) -> Principal:
        """The caller, or ``Unauthorized``; also kept in ``scope["state"]`` for the access log."""
        return remember(request, self._identify(request.headers.get("authorization", "")))

    def key_digest(self, key: str) -> str | None:
        """The sha256 hex digest of ``key`` if it is a valid key now (configured, or stored and not revoked)."""
        try:
            self._identify(f"Bearer {key}")
        except Unauthorized:
            return None
        return hashlib.sha256(key.strip().encode()).hexdigest()

    def resolve(self, digest: str) -> Principal | None:
        """The principal of the key whose sha256 hex digest is ``digest``, if it is still valid (a dashboard
        session keeps the digest, so revoking a stored key ends its sessions too)."""
        try:
            presented = bytes.fromhex(digest)
        except ValueError:
            return None
        return self._match(presented)

    def submitter(self, request: HTTPConnection) -> Principal:
        """The caller, if its role may create jobs and uploads; ``Forbidden`` (403) for a reader."""
        principal = self.principal(request)
        if not principal.role.submits:
            raise Forbidden("this key may only read jobs; creating them needs a submitter or admin key")
        return principal

    def admin(self, request: HTTPConnection) -> Principal:
        """The caller, if it has an admin key; ``Forbidden`` (403) otherwise."""
        principal = self.principal(request)
        if not principal.admin:
            raise Forbidden("this needs an admin key")
        return principal

    def _identify(self, header: str) -> Principal:
        scheme, _, key = header.partition(" ")
        key = key.strip()
        principal = self._match(hashlib.sha256(key.encode()).digest()) if scheme.lower() == "bearer" and key else None
        if principal is None:
            raise Unauthorized("a valid bearer API key is required")
        return principal

    def _match(self, presented: bytes) -> Principal | None:
        """Every configured digest is compared (constant time); then the store, by digest."""
        found: ConfiguredKey | None = None
        for configured, digest in zip(self._configured, self._digests, strict=True):
            if hmac.compare_digest(digest, presented) and found is None:
                found = configured
        if found is not None:
            return found.principal()
        stored = self._store.key_by_digest(presented.hex()) if self._store is not None else None
        return None if stored is None or stored.revoked else stored.principal()


def remember(request: HTTPConnection, principal: Principal) -> Principal:
    """Keep the caller's key id and tenant in ``scope["state"]``, where the access log reads them."""
    state = request.scope.setdefault("state", {})
    state[CALLER], state[TENANT] = principal.key_id, principal.tenant
    return principal
