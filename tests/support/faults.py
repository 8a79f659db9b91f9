"""Fault injection: an HTTP proxy in front of moto or the sandbox, and wrappers for local adapters.

The proxy forwards every request to its upstream unless a fault is drawn for it: an error
answer (503, the request never reaches the upstream), a reset connection (closed without an
answer), or a delay. Rates can be changed while it runs; counters say what happened.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from handlers.base.errors import QueueError, StorageError
from handlers.net.server import BackgroundServer
from handlers.ports import BlobStore, ListedObject, Message, Removed, StoredObject, WorkQueue

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
        "content-length", "content-encoding"}


class ConnectionReset(Exception):
    """Raised inside the proxy's app after a partial answer: uvicorn drops the connection."""


@dataclass
class Faults:
    error_rate: float = 0.0
    reset_rate: float = 0.0
    delay: float = 0.0
    applies: Callable[[Request], bool] = field(default=lambda _: True)
    seed: int = 7
    counts: dict[str, int] = field(default_factory=lambda: {"forwarded": 0, "errors": 0, "resets": 0})

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self, request: Request) -> str:
        if not self.applies(request):
            return "forward"
        with self._lock:
            roll = self._rng.random()
        if roll < self.error_rate:
            return "error"
        if roll < self.error_rate + self.reset_rate:
            return "reset"
        return "forward"

    def count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1


class FaultProxy:
    def __init__(self, upstream: str, faults: Faults) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = faults
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        request = Request(scope, receive)
        if self.faults.delay and self.faults.applies(request):
            await asyncio.sleep(self.faults.delay)
        verdict = self.faults.draw(request)
        if verdict == "error":
            self.faults.count("errors")
            await _service_unavailable(request)(scope, receive, send)
            return
        if verdict == "reset":  # start a 503, then drop the connection halfway through its body
            self.faults.count("resets")
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-length", b"1000"), (b"content-type", b"text/xml")]})
            await send({"type": "http.response.body", "body": b"<partial", "more_body": True})
            raise ConnectionReset("injected reset")
        response = await self._forward(request)
        self.faults.count("forwarded")
        await response(scope, receive, send)

    async def _forward(self, request: Request) -> Response:
        assert self._client is not None
        body = await request.body()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
        url = self.upstream + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        upstream = await self._client.request(request.method, url, content=body, headers=headers)
        kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._client = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _service_unavailable(request: Request) -> Response:
    """A 503 in the shape the caller's protocol expects (JSON for DynamoDB/SQS, XML otherwise)."""
    if "json" in request.headers.get("content-type", ""):
        body = b'{"__type": "ServiceUnavailable", "message": "injected fault"}'
        return Response(body, status_code=503, media_type="application/x-amz-json-1.0")
    body = b"<Error><Code>ServiceUnavailable</Code><Message>injected fault</Message></Error>"
    return Response(body, status_code=503, media_type="text/xml")


@contextmanager
def fault_proxy(upstream: str, faults: Faults) -> Iterator[str]:
    server = BackgroundServer(FaultProxy(upstream, faults), log_level="critical")
    with server as url:
        yield url


class _Dice:
    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.injected = 0

    def roll(self) -> bool:
        with self._lock:
            hit = self._rng.random() < self.rate
            self.injected += hit
            return hit


class FaultyBlobStore:
    """A blob store whose writes fail (midway through the stream) at ``rate``."""

    def __init__(self, inner: BlobStore, rate: float, seed: int = 11) -> None:
        self.inner = inner
        self.dice = _Dice(rate, seed)

    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str,
                   metadata: Mapping[str, str] | None = None, only_new: bool = False) -> StoredObject:
        fail = self.dice.roll()

        def guarded() -> Iterator[bytes]:
            for index, chunk in enumerate(chunks):
                if fail and index == 0:
                    yield chunk[: len(chunk) // 2]
                    raise StorageError("injected storage fault", code="injected")
                yield chunk

        return self.inner.put_stream(key, guarded(), content_type=content_type, metadata=metadata, only_new=only_new)

    def head(self, key: str) -> StoredObject | None:
        return self.inner.head(key)

    def read(self, key: str) -> Iterator[bytes]:
        return self.inner.read(key)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        return self.inner.read_range(key, start, length)

    def older(self, prefix: str, before: float, limit: int = 1000) -> list[ListedObject]:
        return self.inner.older(prefix, before, limit)

    def delete(self, keys: Collection[str]) -> None:
        self.inner.delete(keys)

    def uri(self, key: str) -> str:
        return self.inner.uri(key)

    def presign(self, key: str, expires_in: int) -> str | None:
        return self.inner.presign(key, expires_in)

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)


class QueueWrapper:
    """A WorkQueue that hands every call to ``inner``; subclasses override what they watch."""

    def __init__(self, inner: WorkQueue) -> None:
        self.inner = inner

    def send(self, body: Mapping[str, Any], *, delay: float = 0.0) -> str:
        return self.inner.send(body, delay=delay)

    def send_batch(self, bodies: Sequence[Mapping[str, Any]]) -> list[str]:
        self._maybe_fail("send")
        return self.inner.send_batch(bodies)

    def receive(self, *, max_messages: int = 10, wait: float = 0.0) -> list[Message]:
        return self.inner.receive(max_messages=max_messages, wait=wait)

    def ack(self, message: Message) -> None:
        self.inner.ack(message)

    def retry_later(self, message: Message, delay: float) -> None:
        self.inner.retry_later(message, delay)

    def dead_letters(self, limit: int = 100) -> list[Message]:
        return self.inner.dead_letters(limit)

    def redrive(self) -> int:
        return self.inner.redrive()

    def depth(self) -> dict[str, int]:
        return self.inner.depth()

    def expire(self, before: float, *, limit: int = 1000, dry_run: bool = False) -> Removed:
        return self.inner.expire(before, limit=limit, dry_run=dry_run)


class FaultyQueue(QueueWrapper):
    """A work queue whose send, receive and ack fail at ``rate``."""

    def __init__(self, inner: WorkQueue, rate: float, seed: int = 13) -> None:
        super().__init__(inner)
        self.dice = _Dice(rate, seed)

    def _maybe_fail(self, what: str) -> None:
        if self.dice.roll():
            raise QueueError(f"injected queue fault on {what}", code="injected")

    def send(self, body: Mapping[str, Any], *, delay: float = 0.0) -> str:
        self._maybe_fail("send")
        return super().send(body, delay=delay)

    def receive(self, *, max_messages: int = 10, wait: float = 0.0) -> list[Message]:
        self._maybe_fail("receive")
        return super().receive(max_messages=max_messages, wait=wait)

    def ack(self, message: Message) -> None:
        self._maybe_fail("ack")
        super().ack(message)


class FaultyBus:
    """An event bus whose publish fails at ``rate`` (before anything is published)."""

    def __init__(self, inner: Any, rate: float, seed: int = 17) -> None:
        self.inner = inner
        self.dice = _Dice(rate, seed)

    def publish(self, event: Mapping[str, Any]) -> None:
        if self.dice.roll():
            raise QueueError("injected bus fault on publish", code="injected")
        self.inner.publish(event)

    def subscriber(self, name: str) -> WorkQueue:
        return self.inner.subscriber(name)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
