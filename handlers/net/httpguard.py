"""uvicorn's httptools protocol with bounds an unauthenticated client cannot stretch.

uvicorn bounds none of these on its httptools parser (``h11_max_incomplete_event_size``
covers only h11), so a client could keep a connection open forever sending header bytes and
grow the process without limit. :func:`guarded_protocol` returns a subclass of
:class:`~uvicorn.protocols.http.httptools_impl.HttpToolsProtocol` that answers:

* ``431`` when a request's head grows past ``max_header_bytes`` or carries more than
  ``max_headers`` header lines;
* ``408`` when a head is not complete ``header_timeout`` seconds after its first byte (or
  after the connection opened), or a body is not complete ``body_timeout`` seconds after
  its head;
* ``503`` (and closes at once) for a connection beyond ``max_connections``.

Each answer has the API's JSON error body (codes ``headers_too_large``, ``request_timeout``,
``too_many_connections``).

Each answer closes the connection. A request that arrives whole in one read (nearly every
request, and every EvoLink callback) costs a count and a byte sum per header line and a few
flags: the timers are armed only when a read ends with a head or body still incomplete. The
bytes of a head still unfinished at the end of a read are counted per read, so a header that
never ends is cut off within one read (at most 256 KB with uvloop) past the limit.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

__all__ = ["ServerLimits", "guarded_protocol"]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one HTTP connection may cost before the server answers and closes it."""

    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 300.0
    max_connections: int = 512


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the answer is already chosen."""


def _answer(status: int, code: str, message: str) -> bytes:
    """A complete HTTP answer with the API's JSON error body; the connection closes after it."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return b"".join([STATUS_LINE[status], b"content-type: application/json\r\n",
                     b"content-length: ", str(len(body)).encode(), b"\r\n",
                     b"connection: close\r\n\r\n", body])


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with :class:`ServerLimits`; build one with :func:`guarded_protocol`."""

    limits: ClassVar[ServerLimits] = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False
        self._in_body = False
        self._head_bytes = 0
        self._header_bytes = 0
        self._header_count = 0
        self._refusal: bytes | None = None
        self._timer: asyncio.TimerHandle | None = None

    # connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(_answer(503, "too_many_connections",
                                 f"more than {self.limits.max_connections} connections; try again later"))
            return
        self._arm(self.limits.header_timeout, "request head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(self._refusal)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(self._too_large())
            elif self._timer is None:
                self._arm(self.limits.header_timeout, "request head")
        elif self._in_body and self._timer is None:
            self._arm(self.limits.body_timeout, "request body")

    # parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._header_bytes = 0
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value)
        if self._header_count > self.limits.max_headers:
            self._refusal = _answer(431, "headers_too_large", f"more than {self.limits.max_headers} header lines")
            raise _Refused
        if self._header_bytes > self.limits.max_header_bytes:
            self._refusal = self._too_large()
            raise _Refused
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._in_body = True
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self._in_body:
            self._in_body = False
            self._disarm()
        super().on_message_complete()

    # limits
    def _too_large(self) -> bytes:
        return _answer(431, "headers_too_large", f"request head over {self.limits.max_header_bytes} bytes")

    def _arm(self, seconds: float, what: str) -> None:
        self._timer = self.loop.call_later(seconds, self._timed_out, what, seconds)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self, what: str, seconds: float) -> None:
        self._timer = None
        started = self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete
        if started:
            self.transport.close()  # an answer is under way: only closing is left
            return
        self._refuse(_answer(408, "request_timeout", f"{what} not received within {seconds:g} s"))

    def _refuse(self, answer: bytes) -> None:
        self._disarm()
        self._in_head = self._in_body = False
        if self.transport.is_closing():
            return
        self.transport.write(answer)
        self.transport.close()


def guarded_protocol(limits: ServerLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` that enforces ``limits``."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
