"""What a file's first bytes say it is: the magic numbers of the media the relay takes, and a few others.

Only the start of the data is read (64 bytes are plenty), so an upload can be refused on its
first chunk. ``None`` means no known signature.
"""

from __future__ import annotations

__all__ = ["SNIFF_BYTES", "sniff"]

SNIFF_BYTES = 64
_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"), (b"ID3", "audio/mpeg"), (b"fLaC", "audio/flac"), (b"OggS", "audio/ogg"),
    (b"\x1aE\xdf\xa3", "video/webm"), (b"%PDF-", "application/pdf"), (b"PK\x03\x04", "application/zip"),
    (b"BM", "image/bmp"),
)
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
_BRANDS = {b"qt  ": "video/quicktime", b"M4A ": "audio/mp4", b"M4B ": "audio/mp4", b"heic": "image/heic",
           b"heix": "image/heic", b"mif1": "image/heif", b"avif": "image/avif"}
# QuickTime files from before ``ftyp`` start with one of these atoms.
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def sniff(head: bytes) -> str | None:
    """The content type ``head`` (a file's first bytes) shows, or None when it shows none we know."""
    if head[:4] == b"RIFF" and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[4:8] == b"ftyp":
        return _BRANDS.get(head[8:12], "video/mp4")
    if head[4:8] in _QUICKTIME_ATOMS:
        return "video/quicktime"
    for prefix, content_type in _PREFIXES:
        if head.startswith(prefix):
            return content_type
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "audio/mpeg"  # an MPEG audio frame header without an ID3 tag
    return None
