"""Static URL rules for reference media and the callback URL (no network, no DNS).

What a URL must look like before anything fetches it: absolute, with a host, no
credentials, no spaces, ``https`` (``http`` too when the sandbox is the provider), and for
media a file extension of the right kind when the path has one. Whether the address is
public is the SSRF guard's job (:mod:`handlers.net.netguard`), whether the file really is a
JPEG is the preflight probe's.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from handlers.base.errors import Violation
from handlers.domain.contract import CALLBACK_URL_MAX, MediaLimits

__all__ = [
    "BASE64_MIN_CHARS",
    "JOB_SCHEME",
    "JobReference",
    "check_callback_url",
    "check_job_reference",
    "check_media_url",
    "is_inline_data",
    "parse_job_reference",
    "url_extension",
]

BASE64_MIN_CHARS = 128  # ours: a scheme-less run of Base64 this long is inline data, not a URL
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_WHITESPACE = re.compile(r"\s+")
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f]")
_EXTENSION = re.compile(r"\.([A-Za-z0-9]{1,8})$")
JOB_SCHEME = "job://"
_JOB_ID = re.compile(r"job_[0-9a-f]{26}")
_OUTPUT = re.compile(r"output-(0|[1-9][0-9]{0,2})")
_FRAME_PARTS = ("poster", "last-frame")
_PART_HELP = {"image": "poster or last-frame (job://JOB_ID/poster)",
              "video": "output-N (job://JOB_ID/output-0)"}


@dataclass(frozen=True, slots=True)
class JobReference:
    """``job://JOB_ID/PART``: output ``N`` of an earlier job (``output-N``), or its first output's ``poster`` or
    ``last-frame`` picture."""

    job_id: str
    part: str

    @property
    def output_index(self) -> int:
        """The output the reference names (the poster and last frame are the first output's)."""
        return int(self.part.removeprefix("output-")) if self.part.startswith("output-") else 0

    @property
    def is_frame(self) -> bool:
        return self.part in _FRAME_PARTS

    def __str__(self) -> str:
        return f"{JOB_SCHEME}{self.job_id}/{self.part}"


def parse_job_reference(url: str) -> JobReference | None:
    """The job reference ``url`` spells (any well-formed ``job://ID/PART``), or None if it is no job reference."""
    if url[:len(JOB_SCHEME)].lower() != JOB_SCHEME:
        return None
    job_id, slash, part = url[len(JOB_SCHEME):].partition("/")
    if not slash or not _JOB_ID.fullmatch(job_id) or not (_OUTPUT.fullmatch(part) or part in _FRAME_PARTS):
        return None
    return JobReference(job_id, part)


def check_job_reference(url: str, field: str, limits: MediaLimits) -> list[Violation]:
    """Every rule a ``job://`` reference breaks: its form, and its part fitting the array (pictures in
    ``image_urls``, outputs in ``video_urls``). Whether the job exists is the submitter's check."""
    expected = _PART_HELP.get(limits.kind)
    if expected is None:
        return [Violation(field, "invalid_reference",
                          f"{field}: job references are accepted in image_urls and video_urls only")]
    reference = parse_job_reference(url)
    if reference is None:
        return [Violation(field, "invalid_reference",
                          f"{field} must be job://JOB_ID/PART with a job id like job_ and 26 hex digits, "
                          f"and PART one of output-N, poster, last-frame; got {_short(url)}")]
    if reference.is_frame != (limits.kind == "image"):
        what = "an image" if limits.kind == "image" else "a video"
        return [Violation(field, "invalid_reference", f"{field} names {reference.part}, which is not {what}; "
                          f"in {limits.array} a job reference names {expected}")]
    return []


def is_inline_data(value: str) -> bool:
    """True for a ``data:`` URL or a long scheme-less Base64 payload."""
    text = value.strip()
    if text[:5].lower() == "data:":
        return True
    if len(text) < BASE64_MIN_CHARS:
        return False
    return _BASE64.fullmatch(_WHITESPACE.sub("", text)) is not None


def url_extension(path: str) -> str | None:
    """The lower-cased extension of a URL path's last segment (``.jpg``), or None.

    An all-digit suffix (``/v1.0``) is a version, not an extension.
    """
    match = _EXTENSION.search(unquote(path).rsplit("/", 1)[-1])
    if match is None or match.group(1).isdigit():
        return None
    return "." + match.group(1).lower()


def _invalid(field: str, why: str) -> Violation:
    return Violation(field, "invalid_url", f"{field} must be an absolute URL with a host; {why}")


def _split(url: str, field: str) -> SplitResult | Violation:
    if _UNSAFE_CHARS.search(url):
        return _invalid(field, "it contains spaces or control characters (encode them)")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError as exc:
        return _invalid(field, f"it cannot be parsed ({exc})")
    if not parts.scheme or not parts.hostname:
        return _invalid(field, f"got {_short(url)}")
    if "@" in parts.netloc:
        return _invalid(field, "it must not carry credentials (user:password@)")
    return parts


def _scheme(parts: SplitResult, field: str, *, allow_http: bool) -> list[Violation]:
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme.lower() in allowed:
        return []
    wanted = " or ".join(allowed)
    message = f"{field} must use {wanted}, got {parts.scheme}"
    return [Violation(field, "insecure_url", message)]


def _extension(parts: SplitResult, field: str, limits: MediaLimits) -> list[Violation]:
    extension = url_extension(parts.path)
    if extension is None or extension in limits.extensions:
        return []
    allowed = ", ".join(limits.extensions)
    message = f"{limits.kind} files must be one of {allowed}; {field} ends in {extension}"
    return [Violation(field, "unsupported_format", message)]


def check_media_url(
    url: str, field: str, limits: MediaLimits, *, allow_http: bool = False, references: bool = False
) -> list[Violation]:
    """Every rule one reference URL breaks (``field`` is its path, e.g. ``image_urls[0]``).

    With ``references``, a ``job://`` reference to an earlier job's output is accepted in its place
    (:func:`check_job_reference`)."""
    if references and url[:len(JOB_SCHEME)].lower() == JOB_SCHEME:
        return check_job_reference(url, field, limits)
    if is_inline_data(url):
        message = f"{field} must link to the {limits.kind}; data: URLs and Base64 are refused"
        return [Violation(field, "inline_data_forbidden", message)]
    parts = _split(url, field)
    if isinstance(parts, Violation):
        return [parts]
    return _scheme(parts, field, allow_http=allow_http) + _extension(parts, field, limits)


def _local_host_kind(host: str) -> str | None:
    """What makes a literal host unreachable from the internet (``loopback`` …), or None.

    Only literals are judged: no DNS lookup happens here.
    """
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return "localhost"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    kinds = (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
             ("link-local", address.is_link_local), ("private", address.is_private))
    return next((kind for kind, hit in kinds if hit), None)


def _public_host(parts: SplitResult, field: str) -> list[Violation]:
    kind = _local_host_kind(parts.hostname or "")
    if kind is None:
        return []
    what = "names this machine" if kind == "localhost" else f"is {'an' if kind[0] in 'aeiou' else 'a'} {kind} address"
    message = (f"{field} must reach a public host; {parts.hostname} {what}, "
               "and EvoLink refuses private, loopback, link-local and unspecified addresses and localhost")
    return [Violation(field, "private_address", message)]


def check_callback_url(
    url: str, field: str = "callback_url", *, allow_http: bool = False
) -> list[Violation]:
    """Every rule a callback URL breaks: length, shape, scheme, and a literal non-public host.

    With ``allow_http`` (the sandbox is the provider) local hosts are accepted too.
    """
    found: list[Violation] = []
    if len(url) > CALLBACK_URL_MAX:
        message = f"{field} may be at most {CALLBACK_URL_MAX} characters, got {len(url)}"
        found.append(Violation(field, "too_long", message))
    parts = _split(url, field)
    if isinstance(parts, Violation):
        return [*found, parts]
    found += _scheme(parts, field, allow_http=allow_http)
    return found if allow_http else found + _public_host(parts, field)


def _short(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")
