"""Capability tokens for callback URLs.

EvoLink's callbacks carry no signature, so the callback URL itself carries an unguessable
per-job token: ``<kid>.<base64url(HMAC-SHA256(secret[kid], "evolink-callback:" + job_id))>``.
The same keys sign other capability URLs under other purposes (``UPLOAD_URL``), so a token
made for one use never verifies for another. The key id makes rotation possible: the first
secret signs new jobs, every configured secret still verifies; drop a secret to revoke every
token it signed.

Secrets are configured as ``kid:secret`` pairs (``RELAY_CALLBACK_SECRET=k2:…,k1:…``); a bare
secret gets the key id ``k1``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from handlers.base.errors import ConfigurationError
from handlers.base.logs import register_secret

__all__ = ["CALLBACK", "UPLOAD_URL", "TokenSigner"]

CALLBACK = b"evolink-callback:"
UPLOAD_URL = b"upload-url:"
_MIN_SECRET = 16


def _parse(entry: str, position: int) -> tuple[str, bytes]:
    kid, sep, secret = entry.partition(":")
    if not sep:
        kid, secret = f"k{position + 1}", entry
    if not kid.isalnum() or len(secret) < _MIN_SECRET:
        raise ConfigurationError(
            "RELAY_CALLBACK_SECRET entries must be 'kid:secret' with an alphanumeric kid "
            f"and a secret of at least {_MIN_SECRET} characters")
    return kid, secret.encode()


@dataclass(frozen=True, slots=True)
class TokenSigner:
    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def from_config(cls, entries: Sequence[str], *, required: bool = True) -> TokenSigner:
        """Keys from ``kid:secret`` entries; with ``required=False`` no entries give a signer
        that refuses to sign and verifies nothing (a function that never builds callback URLs)."""
        if not entries and required:
            raise ConfigurationError("no callback secret configured (RELAY_CALLBACK_SECRET)")
        keys = tuple(_parse(entry, i) for i, entry in enumerate(entries))
        for _, secret in keys:
            register_secret(secret.decode())
        return cls(keys)

    @property
    def current_kid(self) -> str:
        return self.keys[0][0] if self.keys else ""

    def sign(self, job_id: str, *, purpose: bytes = CALLBACK) -> str:
        """``<kid>.<mac>`` for ``job_id`` (or any message) under ``purpose``, with the newest key."""
        if not self.keys:
            raise ConfigurationError("no callback secret configured (RELAY_CALLBACK_SECRET)")
        kid, secret = self.keys[0]
        return f"{kid}.{_mac(secret, purpose, job_id)}"

    def verify(self, job_id: str, token: str | None, *, purpose: bytes = CALLBACK) -> bool:
        """Constant-time check; unknown key ids and malformed tokens are simply false."""
        if not token:
            return False
        kid, _, mac = (part.encode("utf-8", "surrogatepass") for part in token.partition("."))
        ok = False
        for known_kid, secret in self.keys:
            expected = _mac(secret, purpose, job_id).encode()
            ok |= hmac.compare_digest(known_kid.encode(), kid) & hmac.compare_digest(expected, mac)
        return ok


def _mac(secret: bytes, purpose: bytes, message: str) -> str:
    digest = hmac.new(secret, purpose + message.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
