"""The result download: statuses, limits, truncation, redirects and the SSRF guard, over real sockets."""

from __future__ import annotations

import hashlib
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

from handlers.base.errors import DownloadFailed
from handlers.net.download import CHUNK_SIZE, USER_AGENT, ResultFetcher
from handlers.net.netguard import AddressPolicy
from tests.support.media_server import MediaServer
from tests.support.tls import self_signed

MIB = 1024 * 1024
BODY = random.Random(7).randbytes(3 * MIB + 11)


class RawServer:
    """Answers every connection on 127.0.0.1 with the same raw bytes, then hangs up.

    For the answers a well-behaved server never gives: a body cut short, one with no length,
    chunked, or compressed.
    """

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._socket.getsockname()[1]}"

    def url(self, path: str = "/result.mp4") -> str:
        return f"http://{self.host}{path}"

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request and (piece := connection.recv(65536)):
                    request += piece
                self.requests.append(request)
                connection.sendall(self.answer)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._socket.close()


def raw_answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = "".join(f"{header}\r\n" for header in (f"HTTP/1.1 {status}", *headers, "Connection: close"))
    return head.encode() + b"\r\n" + body


@pytest.fixture
def server() -> Iterator[MediaServer]:
    with MediaServer() as running:
        yield running


def fetcher_for(*servers: MediaServer | RawServer, **options: object) -> ResultFetcher:
    return ResultFetcher(AddressPolicy(allowed_hosts=frozenset(s.host for s in servers)), **options)  # type: ignore[arg-type]


def fetch(fetcher: ResultFetcher, url: str) -> bytes:
    with fetcher.open(url) as download:
        return b"".join(download.chunks)


def failure(fetcher: ResultFetcher, url: str) -> DownloadFailed:
    with pytest.raises(DownloadFailed) as caught:
        fetch(fetcher, url)
    return caught.value


def test_a_result_is_iterated_whole_in_chunks_of_at_most_a_mib(server: MediaServer) -> None:
    url = server.add("/clip.mp4", BODY, content_type="video/mp4")
    with fetcher_for(server).open(url) as download:
        chunks = list(download.chunks)
    assert b"".join(chunks) == BODY
    assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE < len(BODY)
    assert (download.content_type, download.length, download.url) == ("video/mp4", len(BODY), url)
    assert [(r.method, r.path, r.user_agent) for r in server.requests] == [("GET", "/clip.mp4", USER_AGENT)]


def test_readinto_fills_a_callers_buffer_to_the_end_of_the_body(server: MediaServer) -> None:
    url = server.add("/clip.mp4", BODY, content_type="video/mp4")
    buffer = bytearray(MIB)
    received = bytearray()
    with fetcher_for(server).open(url) as download:
        while count := download.chunks.readinto(memoryview(buffer)):
            received += buffer[:count]
        assert download.chunks.readinto(memoryview(buffer)) == 0  # the end stays the end
        assert download.chunks.received == len(BODY)
    assert hashlib.sha256(received).digest() == hashlib.sha256(BODY).digest()


@pytest.mark.parametrize(("status", "code", "permanent"), [
    (403, "result_expired", True),
    (404, "result_expired", True),
    (410, "result_expired", True),
    (400, "download_refused", True),
    (429, "download_refused", True),
    (500, "download_error", False),
    (503, "download_error", False),
    (204, "download_error", False),
])
def test_statuses_map_to_permanent_or_transient_failures(server: MediaServer, status: int, code: str,
                                                          permanent: bool) -> None:
    url = server.add("/clip.mp4", b"", content_type="video/mp4", status=status)
    error = failure(fetcher_for(server), url)
    assert (error.code, error.permanent) == (code, permanent)
    assert str(status) in str(error)


def test_a_page_that_is_not_a_video_is_refused_naming_its_type(server: MediaServer) -> None:
    url = server.add("/clip.mp4", b"<html>sign in</html>", content_type="text/html; charset=utf-8")
    error = failure(fetcher_for(server), url)
    assert (error.code, error.permanent) == ("unexpected_content_type", True)
    assert "text/html" in str(error)


def test_a_result_announced_over_the_limit_is_refused_before_its_body_is_read(server: MediaServer) -> None:
    url = server.add("/clip.mp4", BODY, content_type="video/mp4")
    error = failure(fetcher_for(server, max_bytes=MIB), url)
    assert (error.code, error.permanent) == ("result_too_large", True)
    assert f"{len(BODY)} bytes, over the {MIB} limit" in str(error)


def test_a_result_without_a_length_is_stopped_at_the_limit() -> None:
    with RawServer(raw_answer(BODY, "Content-Type: video/mp4")) as raw:
        with fetcher_for(raw, max_bytes=MIB).open(raw.url()) as download:
            assert download.length is None
            with pytest.raises(DownloadFailed, match=f"exceeded the {MIB} byte limit") as caught:
                for _ in download.chunks:
                    pass
    assert (caught.value.code, caught.value.permanent) == ("result_too_large", True)


def test_a_body_cut_short_is_a_transient_failure_not_a_short_file() -> None:
    answer = raw_answer(BODY[:MIB], "Content-Type: video/mp4", f"Content-Length: {len(BODY)}")
    with RawServer(answer) as raw:
        error = failure(fetcher_for(raw), raw.url())
    assert (error.code, error.permanent) == ("download_error", False)
    assert f"after {MIB} of {len(BODY)} bytes" in str(error)


def test_a_chunked_body_and_one_ended_by_closing_arrive_whole() -> None:
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in (BODY[:MIB], BODY[MIB:])) + b"0\r\n\r\n"
    for answer in (raw_answer(chunked, "Content-Type: video/mp4", "Transfer-Encoding: chunked"),
                   raw_answer(BODY, "Content-Type: video/mp4")):
        with RawServer(answer) as raw:
            assert fetch(fetcher_for(raw), raw.url()) == BODY


def test_a_compressed_body_is_refused_rather_than_stored_compressed() -> None:
    answer = raw_answer(b"\x1f\x8b...", "Content-Type: video/mp4", "Content-Encoding: gzip", "Content-Length: 5")
    with RawServer(answer) as raw:
        error = failure(fetcher_for(raw), raw.url())
        assert b"accept-encoding: identity" in raw.requests[0].lower()
    assert (error.code, error.permanent) == ("unexpected_content_type", True)
    assert "'gzip'" in str(error)


def test_redirects_are_followed_and_every_hop_is_vetted(server: MediaServer) -> None:
    port = server.host.rsplit(":", 1)[1]
    server.add("/clip.mp4", BODY, content_type="video/mp4")
    server.add("/signed", status=302, location="/clip.mp4")
    server.add("/elsewhere", status=307, location=f"https://localhost:{port}/clip.mp4")
    fetcher = fetcher_for(server)
    assert fetch(fetcher, server.url("/signed")) == BODY
    error = failure(fetcher, server.url("/elsewhere"))
    assert (error.code, error.permanent) == ("unsafe_result_url", True)
    assert "'localhost' resolves to 127.0.0.1 is loopback" in str(error)  # vetted when connecting
    assert [r.path for r in server.requests] == ["/signed", "/clip.mp4", "/elsewhere"]


def test_a_redirect_loop_stops_after_five_hops(server: MediaServer) -> None:
    server.add("/loop", status=302, location="/loop")
    error = failure(fetcher_for(server), server.url("/loop"))
    assert (error.code, error.permanent) == ("download_error", False)
    assert "more than 5 redirects" in str(error)
    assert len(server.requests) == 6


def test_a_private_address_is_refused_before_anything_is_sent(server: MediaServer) -> None:
    url = server.add("/clip.mp4", BODY, content_type="video/mp4")
    port = server.host.rsplit(":", 1)[1]
    for policy, target, reason in [
        (AddressPolicy(), url, "plain http"),
        (AddressPolicy(allow_http=True), url, "loopback"),
        (AddressPolicy(allow_http=True), f"http://localhost:{port}/clip.mp4", "'localhost' resolves to .* loopback"),
    ]:
        with pytest.raises(DownloadFailed, match=reason) as caught:
            fetch(ResultFetcher(policy), target)
        assert (caught.value.code, caught.value.permanent) == ("unsafe_result_url", True)
    assert server.requests == []


def test_a_server_that_does_not_answer_in_time_is_a_transient_failure(server: MediaServer) -> None:
    url = server.add("/clip.mp4", BODY, content_type="video/mp4", delay=2.0)
    error = failure(fetcher_for(server, timeout=0.2), url)
    assert (error.code, error.permanent) == ("download_error", False)
    assert "timed out" in str(error)


def test_nothing_listening_is_a_transient_failure() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        host = f"127.0.0.1:{placeholder.getsockname()[1]}"
    fetcher = ResultFetcher(AddressPolicy(allowed_hosts=frozenset({host})))
    error = failure(fetcher, f"http://{host}/clip.mp4")
    assert (error.code, error.permanent) == ("download_error", False)


def test_tls_is_verified_for_the_url_host_while_connecting_to_the_vetted_address(tmp_path: Path) -> None:
    """The certificate names only DNS:localhost: the download connects to the address it
    vetted (127.0.0.1), and still checks the certificate, and sends SNI, for 'localhost'."""
    server_ctx, client_ctx = self_signed(tmp_path)
    with MediaServer(tls=server_ctx) as tls_server:
        tls_server.add("/clip.mp4", BODY, content_type="video/mp4")
        url = f"https://localhost:{tls_server.host.rsplit(':', 1)[1]}/clip.mp4"
        assert fetch(ResultFetcher(AddressPolicy(allow_private=True), ssl_context=client_ctx), url) == BODY
        untrusted = failure(ResultFetcher(AddressPolicy(allow_private=True)), url)
    assert (untrusted.code, untrusted.permanent) == ("download_error", False)
    assert "CERTIFICATE_VERIFY_FAILED" in str(untrusted)
