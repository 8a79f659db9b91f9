"""A real HTTP server on 127.0.0.1 for tests that fetch media.

Serves registered byte strings (over TLS when given a server ``ssl.SSLContext``) with a
content type, optional ``Range`` support (single ranges: ``a-b``, ``a-``, ``-n``), an
optional delay before answering, any status, and redirects. Records every request (method,
path, Range, User-Agent, body bytes sent) so a test can say what was fetched. Use it as a
context manager; it closes its socket and joins its threads on exit::

    with MediaServer() as server:
        url = server.add("/clip.mp4", data, content_type="video/mp4")
"""

from __future__ import annotations

import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

__all__ = ["MediaServer", "RecordedRequest", "Resource"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True)
class Resource:
    """What one path answers."""

    body: bytes = b""
    content_type: str | None = "application/octet-stream"
    status: int = 200
    ranges: bool = True
    delay: float = 0.0
    location: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    range: str | None
    user_agent: str | None
    status: int
    body_bytes: int


@dataclass
class _State:
    resources: dict[str, Resource] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | Literal[False] | None:
    """(start, end) of a satisfiable range, None for no range, False when unsatisfiable."""
    match = _RANGE.fullmatch((header or "").strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    return (start, end) if start < size and start <= end else False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``MediaServer.requests`` instead."""

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0]
        resource = state.resources.get(path, Resource(status=404, content_type="text/plain"))
        if resource.delay and state.stopping.wait(resource.delay):
            return
        status, headers, body = self._plan(resource)
        self._record(status, len(body) if send_body else 0)
        try:
            self._send(status, headers, body if send_body else b"")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _plan(self, resource: Resource) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": resource.content_type} if resource.content_type else {}
        if resource.location is not None:
            return resource.status, {"Location": resource.location}, b""
        body, size = resource.body, len(resource.body)
        if resource.status != 200 or not resource.ranges:
            return resource.status, headers, body
        span = _byte_range(self.headers.get("Range"), size)
        headers["Accept-Ranges"] = "bytes"
        if span is False:
            return 416, {"Content-Range": f"bytes */{size}"}, b""
        if span is None:
            return 200, headers, body
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return 206, headers, body[start:end + 1]

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self, status: int, body_bytes: int) -> None:
        state = self.server.state
        with state.lock:
            state.requests.append(RecordedRequest(
                self.command, self.path, self.headers.get("Range"),
                self.headers.get("User-Agent"), status, body_bytes,
            ))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: _State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up early are normal here (timeouts, budget stops)."""


class MediaServer:
    """A threaded HTTP server on 127.0.0.1 serving registered resources."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self._state = _State()
        self._server = _Server(self._state)
        self._scheme = "http" if tls is None else "https"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the form an allow-list takes."""
        address, port = self._server.server_address[:2]
        return f"{address!s}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def url(self, path: str) -> str:
        return f"{self._scheme}://{self.host}{path}"

    def add(self, path: str, body: bytes = b"", **options: Any) -> str:
        """Serve ``body`` at ``path`` (options: see :class:`Resource`); returns its URL."""
        self._state.resources[path] = Resource(body=body, **options)
        return self.url(path)

    def bytes_sent(self, path: str) -> int:
        return sum(r.body_bytes for r in self.requests if r.path == path)

    def __enter__(self) -> MediaServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
