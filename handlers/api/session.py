"""Dashboard sessions: a signed, expiring cookie obtained by presenting an API key once.

The token is ``v2.<expires>.<nonce>.<digest>.<mac>``: ``mac`` is HMAC-SHA256 over the rest under a
server-side key, and ``digest`` is the sha256 of the API key that opened the session (the key itself
never goes into the cookie). Each request resolves the digest to its tenant and role again, so a
session sees what its key sees, and revoking a key made at run time ends its sessions too. The nonce is the session's
id: signing out records it as revoked in the job store (:class:`~handlers.ports.SessionRevocations`)
until the token would have expired, so the same cookie is refused by every process and every
Lambda instance afterwards; each request that presents a cookie reads that record once. The key is derived from
the configured API keys (so removing or rotating a key ends every session) or, with none
configured, drawn at random per process (a restart ends every session).

A session only reads: :meth:`Sessions.viewer` accepts the cookie on ``GET`` and ``HEAD``
alone, so a cross-site request can never change state through it; every state-changing
route keeps requiring the bearer key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import Response

from handlers.api.auth import ApiKeys, remember
from handlers.base.errors import Unauthorized
from handlers.base.logs import get_logger
from handlers.domain.tenancy import Principal
from handlers.ports import SessionRevocations

__all__ = ["COOKIE_NAME", "SESSION_TTL", "Session", "SessionTokens", "Sessions", "is_https", "same_origin",
           "session_key"]

log = get_logger(__name__)

COOKIE_NAME = "relay_session"
SESSION_TTL = 12 * 3600
_VERSION = "v2"
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_KEY_LABEL = b"seedance-relay/dashboard-session/v1"


def session_key(api_keys: Sequence[str]) -> bytes:
    """The signing key: derived from ``api_keys`` when there are any, random otherwise."""
    material = "\n".join(sorted(k for k in api_keys if k))
    if not material:
        return secrets.token_bytes(32)
    return hmac.new(_KEY_LABEL, material.encode(), hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Session:
    """What a valid token says: the session's id (its nonce), when it expires (epoch seconds) and the
    sha256 hex digest of the key that opened it."""

    id: str
    expires: int
    digest: str = ""


class SessionTokens:
    """Issues and checks ``v2.<expires>.<nonce>.<digest>.<mac>`` tokens."""

    def __init__(self, key: bytes, *, ttl: int = SESSION_TTL, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ValueError("a session key needs at least 16 bytes")
        self._key = key
        self.ttl = ttl
        self._clock = clock

    def issue(self, digest: str) -> str:
        """A token for a session of the key whose sha256 hex digest is ``digest``."""
        body = f"{_VERSION}.{int(self._clock()) + self.ttl}.{secrets.token_urlsafe(16)}.{digest}"
        return f"{body}.{self._mac(body)}"

    def read(self, token: str | None) -> Session | None:
        """The session of an untampered token of ours that has not expired; ``None`` otherwise."""
        body, _, mac = (token or "").rpartition(".")
        version, _, rest = body.partition(".")
        expires, _, rest = rest.partition(".")
        nonce, _, digest = rest.partition(".")
        if version != _VERSION or not expires.isdigit() or not nonce or len(digest) != 64:
            return None
        if not hmac.compare_digest(self._mac(body).encode(), mac.encode()):
            return None
        if not self._clock() < int(expires) <= self._clock() + self.ttl:
            return None
        return Session(nonce, int(expires), digest)

    def valid(self, token: str | None) -> bool:
        """True for an untampered token of ours that has not expired (revocation is not checked here)."""
        return self.read(token) is not None

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def is_https(request: HTTPConnection) -> bool:
    """Whether the browser reached us over https (directly, or through a TLS-terminating proxy)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def same_origin(request: HTTPConnection) -> bool:
    """False when the browser says the request came from another site (login CSRF guard).

    ``Sec-Fetch-Site`` decides where the browser sends it; ``Origin`` (``null`` from a sandboxed
    or no-referrer page counts as foreign) must name our own host when present.
    """
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


class Sessions:
    """Who may read the dashboard: a bearer key, or (GET and HEAD only) a session cookie not revoked."""

    def __init__(self, api_keys: ApiKeys, tokens: SessionTokens, revocations: SessionRevocations) -> None:
        self._api_keys = api_keys
        self.tokens = tokens
        self._revocations = revocations

    async def viewer(self, request: HTTPConnection) -> Principal:
        """The bearer key's principal, or (``GET``/``HEAD``) the live session's; ``Unauthorized`` otherwise."""
        if "authorization" in request.headers:
            return await run_in_threadpool(self._api_keys.principal, request)
        method = request.scope.get("method", "GET")
        session = self.tokens.read(request.cookies.get(COOKIE_NAME)) if method in _SAFE_METHODS else None
        if session is not None and not await run_in_threadpool(self._revocations.session_revoked, session.id):
            principal = await run_in_threadpool(self._api_keys.resolve, session.digest)
            if principal is not None:
                return remember(request, Principal(principal.tenant, principal.role, "session"))
        raise Unauthorized("a valid bearer API key or dashboard session is required")

    async def open(self, response: Response, request: HTTPConnection, key: str) -> bool:
        """Set a session cookie for ``key`` if it is valid now; ``False`` (nothing set) otherwise."""
        digest = await run_in_threadpool(self._api_keys.key_digest, key)
        if digest is None:
            return False
        response.set_cookie(COOKIE_NAME, self.tokens.issue(digest), max_age=self.tokens.ttl, path="/",
                            secure=is_https(request), httponly=True, samesite="strict")
        return True

    async def close(self, response: Response, request: HTTPConnection) -> None:
        """Revoke the presented session (if it is one of ours and still valid) and clear the cookie."""
        session = self.tokens.read(request.cookies.get(COOKIE_NAME))
        if session is not None:
            await run_in_threadpool(self._revocations.revoke_session, session.id, session.expires)
            log.info("dashboard.session_revoked")
        response.delete_cookie(COOKIE_NAME, path="/", secure=is_https(request), httponly=True, samesite="strict")
