"""A remote file read lazily over HTTP, as a seekable raw stream for Pillow and PyAV.

:func:`open_remote` sends one ``GET`` with ``Range: bytes=0-…`` for the first block: a
``206`` answer gives the size (``Content-Range``) and proves the server serves ranges; then
every read fetches only the blocks it touches (consecutive misses grow a read-ahead up to
:data:`MAX_READAHEAD_BLOCKS`), and fetched blocks are cached. A ``200`` answer means the
server ignores ranges: the body is streamed and kept only as far as reads need it.

Every byte received counts against ``max_read_bytes`` (``probe_budget_exceeded``); every
request and every received chunk is bounded by one :class:`Deadline`. Transport failures,
HTTP errors and timeouts become :class:`~handlers.base.errors.ProbeFailed` with code
``unreachable``; :class:`~handlers.base.errors.UnsafeURL` from a guarded client passes through.
The first such error raised by a read is kept in ``failure`` and later reads return EOF:
a C parser (FFmpeg) may retry a failed read or swallow its error, and the caller can then
re-raise ``failure`` once the parser returns.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from handlers.base.errors import ProbeFailed, UnsafeURL

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "BLOCK_SIZE",
    "MAX_READAHEAD_BLOCKS",
    "Deadline",
    "RemoteFile",
    "open_remote",
]

BLOCK_SIZE = 64 * 1024
MAX_READAHEAD_BLOCKS = 8
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point on a monotonic clock after which no more I/O starts."""

    expires_at: float
    clock: Callable[[], float] = field(default=time.monotonic)

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def remaining(self, url: str) -> float:
        """Seconds left; raises ``ProbeFailed`` (``unreachable``) once none are."""
        left = self.expires_at - self.clock()
        if left <= 0:
            raise ProbeFailed(f"{url}: timed out", code="unreachable")
        return left


def _unreachable(url: str, exc: httpx.HTTPError) -> ProbeFailed:
    if isinstance(exc, httpx.TimeoutException):
        return ProbeFailed(f"{url}: timed out ({type(exc).__name__})", code="unreachable")
    return ProbeFailed(f"{url}: {type(exc).__name__}: {exc}", code="unreachable")


def _send(
    client: httpx.Client, url: str, headers: Mapping[str, str], deadline: Deadline
) -> httpx.Response:
    request = client.build_request(
        "GET", url, headers={**headers, "Accept-Encoding": "identity"},
        timeout=deadline.remaining(url),
    )
    try:
        return client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise _unreachable(url, exc) from exc


def _chunks(response: httpx.Response, url: str, deadline: Deadline) -> Iterator[bytes]:
    """The body's chunks, checking the deadline between them; httpx errors translated."""
    stream = response.iter_bytes(BLOCK_SIZE)
    while True:
        deadline.remaining(url)
        try:
            chunk = next(stream, None)
        except httpx.HTTPError as exc:
            raise _unreachable(url, exc) from exc
        if chunk is None:
            return
        yield chunk


def _read_body(response: httpx.Response, url: str, deadline: Deadline, limit: int) -> bytes:
    data = bytearray()
    for chunk in _chunks(response, url, deadline):
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])


def _content_range(response: httpx.Response, url: str) -> tuple[int, int | None]:
    """The first byte offset and the total size (None when ``*``) of a 206 answer."""
    match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    if match is None:
        raise ProbeFailed(f"{url}: 206 without a valid Content-Range", code="unreachable")
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


def _content_length(response: httpx.Response) -> int | None:
    raw = response.headers.get("content-length", "")
    return int(raw) if raw.isdigit() else None


class RemoteFile(io.RawIOBase):
    """A read-only, seekable view of a remote file; see the module docstring."""

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        *,
        headers: Mapping[str, str],
        max_read_bytes: int,
        deadline: Deadline,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        super().__init__()
        self.url = url
        self.size: int | None = None
        self.content_type: str | None = None
        self.ranged = True
        self.bytes_read = 0
        self.failure: ProbeFailed | UnsafeURL | None = None
        self._client, self._headers, self._deadline = client, dict(headers), deadline
        self._max, self._block = max_read_bytes, block_size
        self._pos = 0
        self._blocks: dict[int, bytes] = {}
        self._readahead = 1
        self._response: httpx.Response | None = None
        self._stream: Iterator[bytes] | None = None
        self._buffer = bytearray()

    # -- opening --------------------------------------------------------------------

    def _start(self) -> None:
        response = self._get(0, self._block - 1)
        self.content_type = response.headers.get("content-type")
        if response.status_code == 200:
            self._stream_from(response)
            return
        try:
            self._first_block(response)
        finally:
            response.close()

    def _first_block(self, response: httpx.Response) -> None:
        if response.status_code == 416:
            self.size = 0
        elif response.status_code == 206:
            self._store(0, self._range_body(response, 0, self._block - 1))
        else:
            raise ProbeFailed(f"{self.url}: HTTP {response.status_code}", code="unreachable")

    def _stream_from(self, response: httpx.Response) -> None:
        self.ranged = False
        self._response = response
        self._stream = _chunks(response, self.url, self._deadline)
        if "content-encoding" not in response.headers:
            self.size = _content_length(response)

    # -- ranged mode -------------------------------------------------------------------

    def _get(self, start: int, end: int) -> httpx.Response:
        headers = {**self._headers, "Range": f"bytes={start}-{end}"}
        return _send(self._client, self.url, headers, self._deadline)

    def _range_body(self, response: httpx.Response, start: int, end: int) -> bytes:
        first, total = _content_range(response, self.url)
        if first != start:
            raise ProbeFailed(f"{self.url}: asked for byte {start}, got {first}",
                              code="unreachable")
        data = _read_body(response, self.url, self._deadline, end - start + 1)
        self.bytes_read += len(data)
        self.size = total if total is not None else self.size
        if total is None and len(data) < end - start + 1:
            self.size = start + len(data)
        return data

    def _fetch(self, start: int, end: int) -> bytes:
        if self.bytes_read + (end - start + 1) > self._max:
            raise ProbeFailed(
                f"{self.url}: reading it needs more than {self._max} bytes",
                code="probe_budget_exceeded",
            )
        response = self._get(start, end)
        try:
            return self._range_answer(response, start, end)
        finally:
            response.close()

    def _range_answer(self, response: httpx.Response, start: int, end: int) -> bytes:
        if response.status_code == 416:
            self.size = start if self.size is None else self.size
            return b""
        if response.status_code != 206:
            raise ProbeFailed(f"{self.url}: HTTP {response.status_code} for a range request",
                              code="unreachable")
        return self._range_body(response, start, end)

    def _store(self, start: int, data: bytes) -> None:
        for offset in range(0, len(data), self._block):
            self._blocks[(start + offset) // self._block] = data[offset:offset + self._block]

    def _last_block(self) -> int | None:
        return None if self.size is None else max(self.size - 1, 0) // self._block

    def _run(self, first: int, last: int) -> int:
        """The last block of the run to fetch from missing block ``first``."""
        self._readahead = (min(self._readahead * 2, MAX_READAHEAD_BLOCKS)
                           if first - 1 in self._blocks else 1)
        end = max(last, first + self._readahead - 1)
        stop = first
        bound = self._last_block()
        while stop < end and stop + 1 not in self._blocks and (bound is None or stop < bound):
            stop += 1
        return stop

    def _ensure(self, first: int, last: int) -> None:
        index = first
        while index <= last:
            if index in self._blocks:
                index += 1
                continue
            stop = self._run(index, last)
            data = self._fetch(index * self._block, (stop + 1) * self._block - 1)
            self._store(index * self._block, data)
            if len(data) < (stop - index + 1) * self._block:
                return
            index = stop + 1

    def _ranged_read(self, pos: int, count: int) -> bytes:
        first, last = pos // self._block, (pos + count - 1) // self._block
        self._ensure(first, last)
        parts = [self._blocks.get(i, b"") for i in range(first, last + 1)]
        data = b"".join(parts)
        skip = pos - first * self._block
        return data[skip:skip + count]

    # -- streaming mode (the server ignores Range) ----------------------------------------

    def _fill(self, upto: float) -> None:
        while len(self._buffer) < upto and self._stream is not None:
            if len(self._buffer) >= self._max:
                raise ProbeFailed(
                    f"{self.url}: reading it needs more than {self._max} bytes "
                    "(the server ignores Range)",
                    code="probe_budget_exceeded",
                )
            chunk = next(self._stream, None)
            if chunk is None:
                self._stream = None
                self.size = len(self._buffer)
            else:
                self._buffer += chunk
                self.bytes_read = len(self._buffer)

    # -- io.RawIOBase ---------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            if self.size is None and not self.ranged:
                self._fill(float("inf"))
            if self.size is None:
                raise io.UnsupportedOperation("the server did not report the size")
            base = self.size
        else:
            base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Fill ``buffer``; after a failure, every later read is EOF (see ``failure``)."""
        if self.failure is not None:
            return 0
        try:
            return self._readinto(buffer)
        except (ProbeFailed, UnsafeURL) as exc:
            self.failure = exc
            raise

    def _readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        count = len(view) if self.size is None else min(len(view), self.size - self._pos)
        if count <= 0:
            return 0
        if self.ranged:
            data = self._ranged_read(self._pos, count)
        else:
            self._fill(self._pos + count)
            data = bytes(self._buffer[self._pos:self._pos + count])
        view[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response, self._stream = None, None
        super().close()


def open_remote(
    client: httpx.Client,
    url: str,
    *,
    max_read_bytes: int,
    deadline: Deadline,
    headers: Mapping[str, str] | None = None,
    block_size: int = BLOCK_SIZE,
) -> RemoteFile:
    """Open ``url`` for lazy reading: one request now, more only as reads need them."""
    remote = RemoteFile(client, url, headers=headers or {}, max_read_bytes=max_read_bytes,
                        deadline=deadline, block_size=block_size)
    try:
        remote._start()
    except BaseException:
        remote.close()
        raise
    return remote
