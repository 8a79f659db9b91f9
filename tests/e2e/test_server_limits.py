"""The HTTP server's limits against raw sockets: header size and count, slow heads and bodies, connections."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from handlers.app.settings import Settings
from handlers.cli.serve import server_limits
from handlers.net.httpguard import ServerLimits
from handlers.net.server import BackgroundServer

pytestmark = pytest.mark.e2e
LIMITS = ServerLimits(max_header_bytes=8192, max_headers=20, header_timeout=0.5, body_timeout=0.5,
                      max_connections=8)
REQUEST = b"POST /echo HTTP/1.1\r\nHost: relay\r\nContent-Length: 5\r\n\r\nhello"


async def echo(request: Request) -> Response:
    try:
        body = await request.body()
    except ClientDisconnect:  # the server cut the body off; nothing to answer
        return Response(status_code=400)
    return PlainTextResponse(f"{len(body)} bytes")


@pytest.fixture
def port() -> Iterator[int]:
    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    server = BackgroundServer(app, limits=LIMITS)
    server.start()
    try:
        yield server.port
    finally:
        server.stop()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(5)
    return sock


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def send_until_closed(sock: socket.socket, prefix: bytes, filler: bytes, budget: int) -> int:
    """Send ``prefix`` then ``filler`` until the server stops reading; the bytes it took."""
    sent = 0
    try:
        sock.sendall(prefix)
        while sent < budget:
            sock.sendall(filler)
            sent += len(filler)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def test_a_normal_request_is_answered(port: int) -> None:
    """Within every limit, a request gets its answer (the guard changes nothing)."""
    with connect(port) as sock:
        sock.sendall(REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0"))
        assert answer(sock).endswith(b"5 bytes")


def test_an_endless_header_is_cut_off_with_431(port: int) -> None:
    """A header that never ends is refused (431) once the head passes max_header_bytes; the server
    stops reading long before the 50 MB the client would send."""
    with connect(port) as sock:
        sock.settimeout(2)
        sent = send_until_closed(sock, b"GET /echo HTTP/1.1\r\nX-Fill: ", b"a" * 16384, 50 * 1024 * 1024)
        assert sent < 8 * 1024 * 1024
        try:
            received = answer(sock)
        except ConnectionResetError:
            received = b"HTTP/1.1 431"  # the reset can overtake the answer once the client kept sending
        assert received.startswith(b"HTTP/1.1 431")


def test_a_large_head_in_one_piece_is_431_naming_the_limit(port: int) -> None:
    """A complete head over the byte limit is answered 431 with the limit in the text."""
    with connect(port) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nX-Fill: " + b"a" * 20000 + b"\r\n\r\n")
        received = answer(sock)
    assert received.startswith(b"HTTP/1.1 431") and b"over 8192 bytes" in received
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "headers_too_large"


def test_too_many_header_lines_are_431(port: int) -> None:
    """More than max_headers header lines is 431, whatever their size."""
    with connect(port) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\n" + b"X-A: 1\r\n" * 21 + b"\r\n")
        received = answer(sock)
    assert received.startswith(b"HTTP/1.1 431") and b"more than 20 header lines" in received


@pytest.mark.parametrize("sent", [b"", b"GET /echo HTTP/1.1\r\nHost: rel"])
def test_a_slow_or_silent_head_times_out_with_408(port: int, sent: bytes) -> None:
    """A connection that sends nothing, or half a head, is answered 408 and closed after header_timeout."""
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall(sent)
        received = answer(sock)
        took = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408") and b"request head not received within 0.5 s" in received
    assert 0.4 < took < 3


def test_a_trickling_head_does_not_reset_the_clock(port: int) -> None:
    """A head sent a byte at a time is cut off header_timeout after it began, not after its last byte."""
    with connect(port) as sock:
        started = time.monotonic()
        try:
            for byte in b"GET /echo HTTP/1.1\r\nX-Slow: " + b"a" * 100:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert time.monotonic() - started < 3  # the trickle alone would take 6.5 s
        try:
            received = answer(sock)
        except ConnectionResetError:
            received = b"reset"  # the refusal was sent; the reset of the unread trickle overtook it
    assert received.startswith(b"HTTP/1.1 408") or received == b"reset"


def test_a_trickling_body_times_out_with_408(port: int) -> None:
    """A body that does not arrive in full within body_timeout is answered 408 and the connection closed."""
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: relay\r\nContent-Length: 1000\r\n\r\nabc")
        received = answer(sock)
        took = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408") and b"request body not received within 0.5 s" in received
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
    assert 0.4 < took < 3


def test_connections_beyond_the_limit_are_refused_with_503(port: int) -> None:
    """Past max_connections, a new connection is answered 503 and closed; the open ones keep working."""
    held = [connect(port) for _ in range(LIMITS.max_connections)]
    try:
        time.sleep(0.2)
        with connect(port) as extra:
            assert answer(extra).startswith(b"HTTP/1.1 503")
        held[0].sendall(REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0"))
        assert answer(held[0]).endswith(b"5 bytes")
    finally:
        for sock in held:
            sock.close()


def test_serve_takes_its_limits_from_the_settings() -> None:
    """serve's limits are the RELAY_MAX_* and RELAY_*_TIMEOUT settings."""
    settings = Settings.from_env({"RELAY_MAX_HEADER_BYTES": "4096", "RELAY_MAX_HEADERS": "30",
                                  "RELAY_HEADER_TIMEOUT": "3", "RELAY_BODY_TIMEOUT": "40",
                                  "RELAY_MAX_CONNECTIONS": "50"})
    assert server_limits(settings) == ServerLimits(4096, 30, 3.0, 40.0, 50)
