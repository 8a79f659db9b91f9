"""Standard Webhooks signatures: HMAC-SHA256 over ``msg_id.timestamp.body``.

The ``webhook-signature`` header is a space-separated list of ``v1,<base64 HMAC>``, one
per active secret, so a receiver keeps verifying through a secret rotation (it accepts
the request when any ``v1`` entry matches one of its secrets; other versions, such as
``v1a``, are skipped).

Secrets::

    whsec_<base64>   the key is the base64-decoded bytes (padding optional), as the spec
                     serialises symmetric secrets and every reference library reads them
    anything else    the key is the string's UTF-8 bytes ("raw"), as the reference
                     JavaScript library's ``{format: "raw"}`` and the Python library's
                     ``Webhook(bytes)``; the spec itself only defines ``whsec_``

:func:`verify` is what a receiver does (and what our tests do): constant-time comparison
and a timestamp tolerance against replays. It raises :class:`InvalidWebhook` with a
machine-readable ``code``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from handlers.base.errors import Unauthorized

__all__ = [
    "DEFAULT_TOLERANCE",
    "ID_HEADER",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "SIGNATURE_VERSION",
    "TIMESTAMP_HEADER",
    "InvalidWebhook",
    "WebhookSecret",
    "sign",
    "verify",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)
SIGNATURE_VERSION = "v1"
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
DEFAULT_TOLERANCE = 300


class InvalidWebhook(Unauthorized):
    """A webhook failed verification. ``code`` says why:

    ``missing_headers``, ``invalid_timestamp``, ``timestamp_too_old``, ``timestamp_too_new``
    or ``no_matching_signature``.
    """

    code = "invalid_webhook"


@dataclass(frozen=True, slots=True)
class WebhookSecret:
    """One HMAC key. Its bytes never show in ``repr``."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("a webhook secret may not be empty")

    @classmethod
    def parse(cls, text: str) -> WebhookSecret:
        """``whsec_<base64>`` → the decoded bytes; any other string → its UTF-8 bytes (raw)."""
        if not text.startswith(SECRET_PREFIX):
            return cls(text.encode("utf-8"))
        encoded = text[len(SECRET_PREFIX):]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"the part after {SECRET_PREFIX!r} is not valid base64") from exc
        return cls(key)

    @classmethod
    def generate(cls, nbytes: int = 32) -> WebhookSecret:
        """A fresh random key (the spec asks for 24 to 64 bytes)."""
        return cls(_random.token_bytes(nbytes))

    def serialize(self) -> str:
        """The ``whsec_<base64>`` form to hand to a receiver."""
        return SECRET_PREFIX + base64.b64encode(self.key).decode("ascii")

    def signature(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """The base64 HMAC-SHA256 of ``msg_id.timestamp.body`` (without the ``v1,`` prefix)."""
        content = f"{msg_id}.{timestamp}.".encode() + body
        return base64.b64encode(hmac.new(self.key, content, hashlib.sha256).digest()).decode("ascii")


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[WebhookSecret]) -> str:
    """The ``webhook-signature`` header value: ``v1,<b64>`` per secret, space-separated.

    ``msg_id`` may not contain ``.`` (the spec's guard against ambiguous signed content).
    """
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    if not msg_id or "." in msg_id:
        raise ValueError(f"webhook id {msg_id!r} must be non-empty and contain no '.'")
    return " ".join(f"{SIGNATURE_VERSION},{secret.signature(msg_id, timestamp, body)}" for secret in secrets)


def verify(headers: Mapping[str, str], body: bytes, secrets: Sequence[WebhookSecret], *,
           tolerance: float = DEFAULT_TOLERANCE, now: float | None = None) -> None:
    """Return if ``headers`` carry a valid signature of ``body`` by one of ``secrets``; else raise.

    Header names are matched case-insensitively. ``now`` (unix seconds, default: the
    current time) must be within ``tolerance`` seconds of ``webhook-timestamp``.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id, stamp, signatures = (lowered.get(n) for n in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
    if not (msg_id and stamp and signatures):
        raise InvalidWebhook("missing webhook-id, webhook-timestamp or webhook-signature",
                             code="missing_headers")
    timestamp = _timestamp(stamp, time.time() if now is None else now, tolerance)
    offered = [value.encode() for version, _, value in (entry.partition(",") for entry in signatures.split())
               if version == SIGNATURE_VERSION and value]
    for secret in secrets:
        expected = secret.signature(msg_id, timestamp, body).encode()
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return
    raise InvalidWebhook("no matching signature", code="no_matching_signature")


def _timestamp(value: str, now: float, tolerance: float) -> int:
    if not (value.isascii() and value.isdigit()):
        raise InvalidWebhook("webhook-timestamp is not an integer", code="invalid_timestamp")
    timestamp = int(value)
    if timestamp < now - tolerance:
        raise InvalidWebhook("webhook-timestamp is too old", code="timestamp_too_old")
    if timestamp > now + tolerance:
        raise InvalidWebhook("webhook-timestamp is too new", code="timestamp_too_new")
    return timestamp
