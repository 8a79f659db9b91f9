"""Copying a provider's result: streamed, SSRF-guarded, bounded, and honest about failure.

A result URL that answers 403, 404 or 410 has expired (EvoLink's links live 24 hours):
that is a permanent failure, never a retry loop. 5xx answers and transport errors are
transient: the caller retries later.

The download runs on the standard library's ``http.client``, whose connections here go only
to addresses the :class:`~handlers.net.netguard.AddressPolicy` allows (each redirect hop is
checked again). Its response can ``readinto`` a caller's buffer straight from the socket, so
:class:`ResultBody` offers that beside plain iteration: the S3 store reads a result into its
part buffers with no copy on the way.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin

from handlers import __version__
from handlers.base.errors import DownloadFailed, UnsafeURL
from handlers.net.netguard import MAX_REDIRECTS, AddressPolicy, AddressRefused, check_url, connect_guarded, parse_url

__all__ = ["CHUNK_SIZE", "Download", "ResultBody", "ResultFetcher"]

_EXPIRED = frozenset({403, 404, 410})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ACCEPTED_TYPES = ("video/", "application/octet-stream", "binary/octet-stream")
USER_AGENT = f"seedance-relay/{__version__} (+result-copy)"
CHUNK_SIZE = 1024 * 1024  # what iterating a ResultBody yields at most
_TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


class ResultBody:
    """A result's bytes, read once: iterate for chunks, or ``readinto`` a buffer of your own.

    Both count what has arrived against the size limit and against the announced
    ``Content-Length``: a body cut short raises :class:`DownloadFailed` (transient), never
    ends quietly.
    """

    def __init__(self, response: http.client.HTTPResponse, length: int | None, max_bytes: int) -> None:
        self._response, self._length, self._max_bytes = response, length, max_bytes
        self.received = 0

    def readinto(self, buffer: memoryview | bytearray) -> int:
        """Fill ``buffer`` as far as the body goes (0 at its end); the socket writes into it directly."""
        try:
            count = self._response.readinto(buffer)
        except _TRANSPORT_ERRORS as exc:
            raise _interrupted(exc) from exc
        self.received += count
        if self.received > self._max_bytes:
            raise DownloadFailed(f"result exceeded the {self._max_bytes} byte limit",
                                 permanent=True, code="result_too_large")
        if not count and len(buffer) and self._length is not None and self.received < self._length:
            raise DownloadFailed(f"download interrupted: the connection closed after {self.received} "
                                 f"of {self._length} bytes", permanent=False, code="download_error")
        return count

    def __iter__(self) -> Iterator[bytes]:
        buffer = bytearray(CHUNK_SIZE)
        view = memoryview(buffer)
        while count := self.readinto(view):
            yield bytes(view[:count])


@dataclass(frozen=True, slots=True)
class Download:
    url: str
    content_type: str
    length: int | None
    chunks: ResultBody


class _GuardedHTTPConnection(http.client.HTTPConnection):
    """An ``http.client`` connection that connects only where ``policy`` allows."""

    policy: AddressPolicy

    def connect(self) -> None:
        def open_socket(address: str) -> socket.socket:
            return socket.create_connection((address, self.port), self.timeout)

        self.sock = connect_guarded(self.policy, self.host, self.port, open_socket,
                                    retry_on=(OSError,), failure=OSError)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _GuardedHTTPSConnection(http.client.HTTPSConnection, _GuardedHTTPConnection):
    """TLS over :class:`_GuardedHTTPConnection` (``HTTPSConnection.connect`` wraps what it
    opens): the certificate is checked, and SNI sent, for the URL's host name, not for the
    vetted address connected to."""


class ResultFetcher:
    def __init__(self, policy: AddressPolicy, *, timeout: float = 60.0,
                 max_bytes: int = 2 * 1024**3, ssl_context: ssl.SSLContext | None = None) -> None:
        self._policy, self._timeout, self._max_bytes = policy, timeout, max_bytes
        self._ssl_context = ssl_context

    def close(self) -> None:
        """Nothing is pooled: each download has its own connection, closed when it ends."""

    @contextmanager
    def open(self, url: str) -> Iterator[Download]:
        connection, response = self._get(url)
        try:
            content_type, length = self._check(response)
            yield Download(url, content_type, length, ResultBody(response, length, self._max_bytes))
        finally:
            response.close()
            connection.close()

    def _get(self, url: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """GET ``url``, following at most :data:`MAX_REDIRECTS` redirects, each hop checked again."""
        for _ in range(MAX_REDIRECTS + 1):
            connection, response = self._request(url)
            location = response.getheader("location")
            if response.status not in _REDIRECTS or not location:
                return connection, response
            response.close()
            connection.close()
            url = urljoin(url, location)
        raise DownloadFailed(f"download interrupted: more than {MAX_REDIRECTS} redirects",
                             permanent=False, code="download_error")

    def _request(self, url: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        try:
            check_url(url, self._policy, resolve=False)
            parsed = parse_url(url)
            host, target = parsed.raw_host.decode("ascii"), parsed.raw_path.decode("ascii")
            connection = self._connection(parsed.scheme, host, parsed.port)
        except UnsafeURL as exc:
            raise DownloadFailed(f"result URL refused: {exc.reason}", permanent=True,
                                 code="unsafe_result_url") from exc
        try:
            connection.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
            return connection, connection.getresponse()
        except AddressRefused as exc:
            connection.close()
            raise DownloadFailed(f"result URL refused: {exc}", permanent=True, code="unsafe_result_url") from exc
        except _TRANSPORT_ERRORS as exc:
            connection.close()
            raise _interrupted(exc) from exc

    def _connection(self, scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection
        if scheme == "http":
            connection = _GuardedHTTPConnection(host, port or 80, timeout=self._timeout)
        else:
            if self._ssl_context is None:
                import httpx  # the same trust store (certifi, or SSL_CERT_FILE) as the relay's other fetches

                self._ssl_context = httpx.create_ssl_context()
            connection = _GuardedHTTPSConnection(host, port or 443, timeout=self._timeout,
                                                 context=self._ssl_context)
        connection.policy = self._policy
        return connection

    def _check(self, response: http.client.HTTPResponse) -> tuple[str, int | None]:
        """The result's content type and announced length, once its answer passes every check."""
        status = response.status
        if status in _EXPIRED:
            raise DownloadFailed(f"result URL answered {status}: the link has expired or is gone",
                                 permanent=True, code="result_expired")
        if 400 <= status < 500:
            raise DownloadFailed(f"result URL answered {status}", permanent=True,
                                 code="download_refused")
        if status != 200:
            raise DownloadFailed(f"result host answered {status}", permanent=False,
                                 code="download_error")
        raw_type = response.getheader("content-type") or "video/mp4"
        if not raw_type.lower().startswith(_ACCEPTED_TYPES):
            raise DownloadFailed(f"result has content type {raw_type.lower()!r}, expected a video",
                                 permanent=True, code="unexpected_content_type")
        encoding = (response.getheader("content-encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise DownloadFailed(f"result is sent with content encoding {encoding!r}, expected none "
                                 "(the request asked for identity)", permanent=True,
                                 code="unexpected_content_type")
        length = _length(response)
        if length is not None and length > self._max_bytes:
            raise DownloadFailed(f"result is {length} bytes, over the {self._max_bytes} limit",
                                 permanent=True, code="result_too_large")
        return raw_type.split(";")[0], length


def _interrupted(exc: BaseException) -> DownloadFailed:
    return DownloadFailed(f"download interrupted: {type(exc).__name__}: {exc}", permanent=False,
                          code="download_error")


def _length(response: http.client.HTTPResponse) -> int | None:
    raw = response.getheader("content-length")
    return int(raw) if raw and raw.isdigit() else None
