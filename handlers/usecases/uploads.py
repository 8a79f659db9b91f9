"""Local files for references: stored in the blob store, handed to the provider as short-lived URLs.

An upload is content-addressed within its tenant (``uploads/<tenant>/<sha256><ext>``), so a
tenant sending the same file twice stores it once, and tenants never share an upload. Sending it
again writes it again, so that its age, by which retention removes uploads
(``RELAY_UPLOAD_URL_TTL`` + ``RELAY_UPLOAD_GRACE``, :mod:`handlers.usecases.retention`), starts over
with its new URL. The URL
the provider gets is the store's own presigned GET when it can make one (S3), or else a relay
URL signed with the callback keys (purpose ``upload-url``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from handlers.app.relay import Relay
from handlers.base.errors import InvalidRequest, NotFound, UnsupportedMediaType, Violation
from handlers.domain.contract import AUDIO, IMAGE, VIDEO, MediaLimits
from handlers.domain.sniff import SNIFF_BYTES, sniff
from handlers.domain.tenancy import DEFAULT_TENANT
from handlers.domain.tokens import UPLOAD_URL

__all__ = ["EXTENSIONS", "MismatchedMedia", "Upload", "check_bytes", "check_upload_url", "limits_for", "store_upload",
           "upload_url"]

EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "video/mp4": ".mp4",
              "video/quicktime": ".mov", "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav",
              "audio/vnd.wave": ".wav", "audio/mpeg": ".mp3", "audio/mp3": ".mp3"}
_KINDS: tuple[MediaLimits, ...] = (IMAGE, VIDEO, AUDIO)
_UPLOAD_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}/[0-9a-f]{64}\.[a-z0-9]{2,4}\Z")  # <tenant>/<sha256><ext>
# Declared types whose bytes are one family: MP4 and QuickTime share the ISO container, and
# WAV and MP3 have several names.
_FAMILY = {"video/mp4": "iso-media", "video/quicktime": "iso-media", "audio/x-wav": "audio/wav",
           "audio/wave": "audio/wav", "audio/vnd.wave": "audio/wav", "audio/mp3": "audio/mpeg"}


class MismatchedMedia(UnsupportedMediaType):
    """The bytes of an upload are not the type its ``Content-Type`` declares (answered 415)."""

    def __init__(self, declared: str, detected: str | None) -> None:
        shown = detected or "not a recognised media type"
        super().__init__(f"the body was declared {declared} but its bytes are {shown}; send the file with "
                         f"its own Content-Type (accepted: {', '.join(sorted(EXTENSIONS))})")
        self.declared = declared
        self.detected = detected

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "declared": self.declared, "detected": self.detected}


@dataclass(frozen=True, slots=True)
class Upload:
    key: str
    url: str
    expires_at: int
    size: int
    sha256: str
    content_type: str
    kind: str
    tenant: str = DEFAULT_TENANT

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def limits_for(content_type: str) -> MediaLimits:
    """The media kind of a content type, or ``InvalidRequest`` listing the accepted ones."""
    base = content_type.split(";")[0].strip().lower()
    for limits in _KINDS:
        if base in limits.content_types:
            return limits
    accepted = ", ".join(sorted(EXTENSIONS))
    raise InvalidRequest([Violation("Content-Type", "unsupported_format",
                                    f"uploads must be one of {accepted}; got {base or 'nothing'!r}")])


def check_bytes(content_type: str, head: bytes) -> None:
    """Refuse (:class:`MismatchedMedia`) a body whose first bytes are not its declared type."""
    declared = content_type.split(";")[0].strip().lower()
    detected = sniff(head[:SNIFF_BYTES])
    if detected is None or _FAMILY.get(detected, detected) != _FAMILY.get(declared, declared):
        raise MismatchedMedia(declared, detected)


def store_upload(relay: Relay, data: bytes, content_type: str, *, ttl: int, tenant: str = DEFAULT_TENANT) -> Upload:
    limits = limits_for(content_type)
    if len(data) > limits.max_bytes:
        raise InvalidRequest([Violation("body", "too_large",
                                        f"{limits.kind} uploads must be at most {limits.max_bytes} bytes, "
                                        f"got {len(data)}")])
    if not data:
        raise InvalidRequest([Violation("body", "empty", "the upload is empty")])
    check_bytes(content_type, data)
    base = content_type.split(";")[0].strip().lower()
    sha = hashlib.sha256(data).hexdigest()
    key = f"uploads/{tenant}/{sha}{EXTENSIONS[base]}"
    relay.blobs.put_stream(key, [data], content_type=base, metadata={"source": "upload", "tenant": tenant})
    url, expires = upload_url(relay, key, ttl=ttl)
    return Upload(key=key, url=url, expires_at=expires, size=len(data), sha256=sha, content_type=base,
                  kind=limits.kind, tenant=tenant)


def upload_url(relay: Relay, key: str, *, ttl: int) -> tuple[str, int]:
    """A URL the provider can fetch ``key`` from until the returned expiry (unix seconds)."""
    expires = int(relay.clock()) + ttl
    presigned = relay.blobs.presign(key, ttl)
    if presigned is not None:
        return presigned, expires
    name = key.removeprefix("uploads/")
    token = relay.signer.sign(f"{name}:{expires}", purpose=UPLOAD_URL)
    return f"{relay.callback_base}/v1/uploads/{name}?{urlencode({'expires': expires, 'sig': token})}", expires


def check_upload_url(relay: Relay, name: str, expires: str, signature: str) -> str:
    """The blob key behind a signed relay URL; ``NotFound`` when forged or expired (the same answer)."""
    valid = relay.signer.verify(f"{name}:{expires}", signature, purpose=UPLOAD_URL)
    if not valid or not expires.isdigit() or int(expires) < relay.clock() or not _UPLOAD_NAME.match(name):
        raise NotFound("no such upload, or its link expired")
    return f"uploads/{name}"
