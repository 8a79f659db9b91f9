"""Bearer API keys, checked in constant time against every configured key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from starlette.requests import HTTPConnection

from handlers.base.errors import Unauthorized

__all__ = ["CALLER", "ApiKeys"]

CALLER = "caller"  # the key in ``scope["state"]`` that names the caller for the access log


class ApiKeys:
    def __init__(self, keys: Sequence[str]) -> None:
        self._digests = tuple(hashlib.sha256(k.encode()).digest() for k in keys if k)

    def caller(self, request: HTTPConnection) -> str:
        """The caller's scope (a fingerprint of its key), or ``Unauthorized``.

        The scope is also kept in ``scope["state"]["caller"]``, where the access log reads it.
        """
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        presented = hashlib.sha256(key.strip().encode()).digest()
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(digest, presented)
        if scheme.lower() != "bearer" or not key.strip() or not matched:
            raise Unauthorized("a valid bearer API key is required")
        scope = presented.hex()[:16]
        request.scope.setdefault("state", {})[CALLER] = scope
        return scope
