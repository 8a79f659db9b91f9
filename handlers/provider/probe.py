"""Preflight probe: fetch just enough of each reference to check it against the contract.

:func:`probe_request` reads ``image_urls``, ``video_urls`` and ``audio_urls`` from a request
body and, for each URL, concurrently and within one overall deadline:

1. vets the URL with the SSRF guard (:mod:`handlers.net.netguard`);
2. opens it as a lazily read remote file (:mod:`handlers.net.probe_io`): HTTP Range requests
   fetch only the bytes the parsers touch, capped by ``max_read_bytes``;
3. reads the real format and properties from the bytes, not from the name or the
   Content-Type: image headers with Pillow (WebP's with a 30-byte header reader, because
   Pillow reads whole WebP files), containers and streams with PyAV;
4. checks them against :mod:`handlers.domain.contract`'s limits, then checks the totals.

Every problem becomes a :class:`~handlers.base.errors.Violation` in the report, shaped like the
validator's (``field`` is a JSON path such as ``video_urls[1]``). Codes:

``unsafe_url``, ``unreachable``, ``probe_budget_exceeded``, ``format_mismatch``,
``unreadable``, ``content_type_mismatch``, ``too_large``, ``dimensions_out_of_range``,
``aspect_out_of_range``, ``pixels_out_of_range``, ``fps_out_of_range``,
``duration_out_of_range``, ``total_duration_exceeded``.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import av
import httpx
from PIL import JpegImagePlugin, PngImagePlugin

from handlers.base.errors import ProbeFailed, UnsafeURL, Violation
from handlers.domain.contract import AUDIO, IMAGE, VIDEO, MediaLimits
from handlers.net.netguard import USER_AGENT, AddressPolicy, check_url, guarded_client
from handlers.net.probe_io import Deadline, RemoteFile, open_remote

__all__ = [
    "DEFAULT_POLICY",
    "MAX_WORKERS",
    "MediaInfo",
    "ProbeReport",
    "probe_request",
]

MAX_WORKERS = 6
DEFAULT_POLICY = AddressPolicy()
_MB = 1024 * 1024
_EPSILON = 1e-6
_AV_OPTIONS = {"probesize": "65536"}  # stream parameters come from the headers
_GENERIC_TYPES = ("text", "image", "video", "audio")


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What the probe learned about one reference; None where it could not tell."""

    url: str
    kind: str
    field: str
    content_type: str | None = None
    size: int | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    fps: float | None = None
    bytes_read: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ProbeReport:
    media: list[MediaInfo] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "media": [m.as_dict() for m in self.media],
                "violations": [v.as_dict() for v in self.violations]}


@dataclass(frozen=True, slots=True)
class _Reference:
    limits: MediaLimits
    index: int
    url: str

    @property
    def field(self) -> str:
        return f"{self.limits.array}[{self.index}]"


@dataclass(frozen=True, slots=True)
class _Probe:
    """How to fetch: shared by every reference of one request."""

    client: httpx.Client
    policy: AddressPolicy
    resolve: bool
    deadline: Deadline
    max_read_bytes: int


# -- reading formats ---------------------------------------------------------------------------


def _allowed_formats(limits: MediaLimits) -> tuple[str, ...]:
    names = (ext.lstrip(".").replace("jpg", "jpeg") for ext in limits.extensions)
    return tuple(dict.fromkeys(names))


def _webp_size(head: bytes) -> tuple[int, int] | None:
    """Canvas size from a WebP file's first 30 bytes (VP8, VP8L or VP8X chunk)."""
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and head[20:21] == b"\x2f":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def _image_facts(remote: RemoteFile) -> dict[str, Any]:
    head = remote.read(30) or b""
    remote.seek(0)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and (size := _webp_size(head)):
        return {"format": "webp", "width": size[0], "height": size[1]}
    opener = {b"\x89PNG": PngImagePlugin.PngImageFile,
              b"\xff\xd8\xff": JpegImagePlugin.JpegImageFile}
    for magic, plugin in opener.items():
        if head.startswith(magic):
            # The plugin class reads the header only; Image.open would add a
            # decompression-bomb warning we have no use for: sides are checked below.
            with io.BufferedReader(remote) as buffered:
                image = plugin(buffered)
                return {"format": image.format.lower() if image.format else None,
                        "width": image.width, "height": image.height}
    raise ProbeFailed("not a PNG, JPEG or WebP image", code="format_mismatch")


def _container_format(container: Any) -> str:
    name = str(container.format.name)
    if "mp4" not in name.split(","):
        return name.split(",")[0]
    brand = str(container.metadata.get("major_brand", "qt")).strip().lower()
    if brand == "qt":
        return "mov"
    if brand.startswith("3g") or brand in ("m4a", "m4b", "m4p", "mj2"):
        return brand
    return "mp4"


def _duration(container: Any) -> float | None:
    if container.duration:
        return float(container.duration) / 1_000_000
    ends = [float(s.duration * s.time_base) for s in container.streams if s.duration]
    return max(ends, default=None)


def _container_facts(container: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {"format": _container_format(container), "duration": _duration(container)}
    video = next(iter(container.streams.video), None)
    if video is not None:
        rate = video.average_rate or video.guessed_rate or video.base_rate
        facts |= {"width": video.codec_context.width or None,
                  "height": video.codec_context.height or None,
                  "fps": float(rate) if rate else None}
    return facts


def _av_facts(remote: RemoteFile) -> dict[str, Any]:
    """Container and stream facts; a read failure FFmpeg swallowed is raised all the same."""
    try:
        with av.open(remote, mode="r", options=dict(_AV_OPTIONS)) as container:
            facts = _container_facts(container)
    except av.FFmpegError as exc:
        if remote.failure is not None:
            raise remote.failure from exc
        reason = exc.strerror or type(exc).__name__
        raise ProbeFailed(f"not a readable media file ({reason})", code="format_mismatch") from exc
    if remote.failure is not None:
        raise remote.failure
    return facts


def _facts(kind: str, remote: RemoteFile) -> dict[str, Any]:
    if kind == IMAGE.kind:
        try:
            return _image_facts(remote)
        except (SyntaxError, OSError, ValueError, EOFError, struct.error) as exc:
            raise ProbeFailed(f"unreadable image: {exc}", code="format_mismatch") from exc
    return _av_facts(remote)


# -- checks ------------------------------------------------------------------------------------


def _format_violations(limits: MediaLimits, info: MediaInfo) -> Iterator[tuple[str, str]]:
    allowed = _allowed_formats(limits)
    if info.format not in allowed:
        yield ("format_mismatch", f"the file is {info.format or 'an unknown format'}; "
               f"{limits.kind} references must be {', '.join(allowed)}")
        return
    content_type = (info.content_type or "").split(";")[0].strip().lower()
    major = content_type.split("/")[0]
    if major in _GENERIC_TYPES and major != limits.kind and content_type not in limits.content_types:
        yield ("content_type_mismatch", f"served as {content_type} but the file is "
               f"{info.format}; expected one of {', '.join(limits.content_types)}")
    if limits.kind == VIDEO.kind and info.width is None:
        yield "unreadable", "the file has no video stream"
    if limits.kind != IMAGE.kind and info.duration is None:
        yield "unreadable", "the duration could not be determined"


def _size_violations(limits: MediaLimits, info: MediaInfo) -> Iterator[tuple[str, str]]:
    if info.size is not None and info.size > limits.max_bytes:
        yield ("too_large", f"{info.size:,} bytes; {limits.kind} references are limited to "
               f"{limits.max_bytes // _MB} MB ({limits.max_bytes:,} bytes)")


def _outside(value: float, low: float, high: float) -> bool:
    return value < low - _EPSILON or value > high + _EPSILON


def _frame_violations(limits: MediaLimits, info: MediaInfo) -> Iterator[tuple[str, str]]:
    if not limits.min_side or info.width is None or info.height is None:
        return
    width, height = info.width, info.height
    if _outside(width, limits.min_side, limits.max_side) or _outside(
            height, limits.min_side, limits.max_side):
        yield ("dimensions_out_of_range", f"{width}x{height} px; each side must be "
               f"between {limits.min_side} and {limits.max_side} px")
    if height and _outside(width / height, limits.min_aspect, limits.max_aspect):
        yield ("aspect_out_of_range", f"aspect ratio (width/height) {width / height:.3f} is "
               f"outside {limits.min_aspect} to {limits.max_aspect}")
    if limits.min_pixels and _outside(width * height, limits.min_pixels, limits.max_pixels):
        yield ("pixels_out_of_range", f"{width}x{height} = {width * height:,} pixels per frame; "
               f"must be between {limits.min_pixels:,} and {limits.max_pixels:,}")


def _time_violations(limits: MediaLimits, info: MediaInfo) -> Iterator[tuple[str, str]]:
    if limits.min_fps and info.fps is not None and _outside(
            info.fps, limits.min_fps, limits.max_fps):
        yield ("fps_out_of_range", f"{info.fps:.3g} fps; must be between "
               f"{limits.min_fps:g} and {limits.max_fps:g} fps")
    if limits.max_seconds and info.duration is not None and _outside(
            info.duration, limits.min_seconds, limits.max_seconds):
        yield ("duration_out_of_range", f"lasts {info.duration:.2f} s; {limits.kind} references "
               f"must last between {limits.min_seconds:g} and {limits.max_seconds:g} s")


def _check(limits: MediaLimits, info: MediaInfo) -> list[Violation]:
    found = [*_size_violations(limits, info), *_format_violations(limits, info)]
    if all(code != "format_mismatch" for code, _ in found):
        found += [*_frame_violations(limits, info), *_time_violations(limits, info)]
    return [Violation(info.field, code, message) for code, message in found]


def _total_violations(media: list[MediaInfo]) -> list[Violation]:
    violations = []
    for limits in (VIDEO, AUDIO):
        total = sum(m.duration or 0.0 for m in media if m.kind == limits.kind)
        if total > limits.max_total_seconds + _EPSILON:
            violations.append(Violation(
                limits.array, "total_duration_exceeded",
                f"{limits.kind} references last {total:.2f} s in total; "
                f"the limit is {limits.max_total_seconds:g} s"))
    return violations


# -- probing -------------------------------------------------------------------------------------


def _references(body: Mapping[str, Any], kinds: Sequence[MediaLimits]) -> list[_Reference]:
    found = []
    for limits in kinds:
        urls = body.get(limits.array)
        if isinstance(urls, list):
            found += [_Reference(limits, i, url) for i, url in enumerate(urls)
                      if isinstance(url, str)]
    return found


def _read(probe: _Probe, ref: _Reference, info: MediaInfo) -> tuple[MediaInfo, list[Violation]]:
    remote = open_remote(probe.client, ref.url, max_read_bytes=probe.max_read_bytes,
                         deadline=probe.deadline, headers={"User-Agent": USER_AGENT})
    with remote:
        info = replace(info, content_type=remote.content_type, size=remote.size)
        try:
            info = replace(info, **_facts(ref.limits.kind, remote))
        except ProbeFailed as exc:
            info = replace(info, size=remote.size, bytes_read=remote.bytes_read)
            sizes = [Violation(ref.field, *found) for found in _size_violations(ref.limits, info)]
            return info, [*sizes, Violation(ref.field, exc.code, exc.message)]
        info = replace(info, size=remote.size, bytes_read=remote.bytes_read)
    return info, _check(ref.limits, info)


def _probe_one(probe: _Probe, ref: _Reference) -> tuple[MediaInfo, list[Violation]]:
    info = MediaInfo(ref.url, ref.limits.kind, ref.field)
    try:
        check_url(ref.url, probe.policy, resolve=probe.resolve)
        return _read(probe, ref, info)
    except UnsafeURL as exc:
        return info, [Violation(ref.field, "unsafe_url", f"refused: {exc.reason}")]
    except ProbeFailed as exc:
        return info, [Violation(ref.field, exc.code, exc.message)]


def _probe_all(probe: _Probe, refs: list[_Reference]) -> ProbeReport:
    report = ProbeReport()
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(refs)),
                            thread_name_prefix="probe") as pool:
        for info, violations in pool.map(lambda ref: _probe_one(probe, ref), refs):
            report.media.append(info)
            report.violations.extend(violations)
    report.violations.extend(_total_violations(report.media))
    return report


def probe_request(
    body: Mapping[str, Any],
    *,
    client: httpx.Client | None = None,
    policy: AddressPolicy = DEFAULT_POLICY,
    timeout: float = 20.0,
    max_read_bytes: int = 8 * _MB,
    kinds: Sequence[MediaLimits] = (IMAGE, VIDEO, AUDIO),
) -> ProbeReport:
    """Fetch the head (and, where needed, the tail) of each reference and check it.

    ``timeout`` bounds the whole probe; ``max_read_bytes`` bounds the bytes read per
    reference; ``kinds`` are the references probed (``(VIDEO,)``: the reference videos
    alone, whose lengths an estimate needs). Without ``client`` a guarded client
    (:func:`handlers.net.netguard.guarded_client`) is made and closed here; a given client is
    used as is, and each URL is then also resolved and vetted up front (the client's own
    transport should be guarded too).
    """
    refs = _references(body, kinds)
    if not refs:
        return ProbeReport()
    owned = client is None
    http = guarded_client(policy, timeout=timeout) if client is None else client
    probe = _Probe(http, policy, not owned, Deadline.after(timeout), max_read_bytes)
    try:
        return _probe_all(probe, refs)
    finally:
        if owned:
            http.close()
