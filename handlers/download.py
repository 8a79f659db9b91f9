"""Copying a provider's result: streamed, SSRF-guarded, bounded, and honest about failure.

A result URL that answers 403, 404 or 410 has expired (EvoLink's links live 24 hours):
that is a permanent failure, never a retry loop. 5xx answers and transport errors are
transient: the caller retries later.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from handlers import __version__
from handlers.errors import DownloadFailed, UnsafeURL
from handlers.netguard import AddressPolicy, guarded_client

__all__ = ["Download", "ResultFetcher"]

_EXPIRED = frozenset({403, 404, 410})
_ACCEPTED_TYPES = ("video/", "application/octet-stream", "binary/octet-stream")
USER_AGENT = f"seedance-relay/{__version__} (+result-copy)"


@dataclass(frozen=True, slots=True)
class Download:
    url: str
    content_type: str
    length: int | None
    chunks: Iterator[bytes]


class ResultFetcher:
    def __init__(self, policy: AddressPolicy, *, timeout: float = 60.0,
                 max_bytes: int = 2 * 1024**3,
                 client: httpx.Client | None = None) -> None:
        self._client = client or guarded_client(policy, timeout=timeout,
                                                headers={"User-Agent": USER_AGENT})
        self._max_bytes = max_bytes

    def close(self) -> None:
        self._client.close()

    @contextmanager
    def open(self, url: str) -> Iterator[Download]:
        try:
            with self._client.stream("GET", url) as response:
                self._check(response)
                length = _length(response)
                content_type = response.headers.get("content-type", "video/mp4").split(";")[0]
                yield Download(url, content_type, length, self._chunks(response))
        except UnsafeURL as exc:
            raise DownloadFailed(f"result URL refused: {exc.reason}", permanent=True,
                                 code="unsafe_result_url") from exc
        except httpx.HTTPError as exc:
            raise DownloadFailed(f"download interrupted: {type(exc).__name__}: {exc}",
                                 permanent=False, code="download_error") from exc

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if status in _EXPIRED:
            raise DownloadFailed(f"result URL answered {status}: the link has expired or is gone",
                                 permanent=True, code="result_expired")
        if 400 <= status < 500:
            raise DownloadFailed(f"result URL answered {status}", permanent=True,
                                 code="download_refused")
        if status >= 500 or status != 200:
            raise DownloadFailed(f"result host answered {status}", permanent=False,
                                 code="download_error")
        content_type = response.headers.get("content-type", "video/mp4").lower()
        if not content_type.startswith(_ACCEPTED_TYPES):
            raise DownloadFailed(f"result has content type {content_type!r}, expected a video",
                                 permanent=True, code="unexpected_content_type")
        length = _length(response)
        if length is not None and length > self._max_bytes:
            raise DownloadFailed(f"result is {length} bytes, over the {self._max_bytes} limit",
                                 permanent=True, code="result_too_large")

    def _chunks(self, response: httpx.Response) -> Iterator[bytes]:
        """The body as the socket delivers it: re-cutting it into fixed sizes would copy every byte once more."""
        seen = 0
        for chunk in response.iter_bytes():
            seen += len(chunk)
            if seen > self._max_bytes:
                raise DownloadFailed(f"result exceeded the {self._max_bytes} byte limit",
                                     permanent=True, code="result_too_large")
            yield chunk


def _length(response: httpx.Response) -> int | None:
    raw = response.headers.get("content-length")
    return int(raw) if raw and raw.isdigit() else None
