"""Storage faults inside a relay process: its blob store, ingest queue and event bus fail at a rate.

The soak runs the relay as ``seedance-relay serve`` runs it, with :func:`faulty_build` in place of
``build_relay``: a video upload fails midway through its stream, a queue send, receive or ack raises
``QueueError``, an event publish raises before anything is published, each with probability ``rate``.
Every injected fault is logged (``soak.fault``, with its kind) so the soak can count them from the
relay's log, which outlives a SIGKILL. Everything else is handed to the real port unchanged.

Benchmarks never import from ``tests/``: ``tests/support/faults.py`` has the same wrappers in the
shape the tests want.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from handlers.app.relay import Relay
from handlers.app.settings import Settings
from handlers.app.wiring import build_relay
from handlers.base.errors import QueueError, StorageError
from handlers.base.logs import get_logger
from handlers.ports import Message, StoredObject

__all__ = ["FAULT_KINDS", "Dice", "FaultyBlobs", "FaultyBus", "FaultyQueue", "faulty_build"]

log = get_logger("soak.faults")
FAULT_KINDS = ("blob_put", "queue_send", "queue_receive", "queue_ack", "bus_publish")


class Dice:
    """A seeded draw with probability ``rate``, safe across threads; each hit is logged as ``kind``."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def hit(self, kind: str) -> bool:
        with self._lock:
            hit = self._rng.random() < self.rate
        if hit:
            log.warning("soak.fault", kind=kind)
        return hit


class _Delegating:
    """Hands every attribute it does not define to ``inner``."""

    def __init__(self, inner: Any, dice: Dice) -> None:
        self.inner = inner
        self.dice = dice

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FaultyBlobs(_Delegating):
    """Writes (videos, manifests, pictures) fail after half of their first chunk went through: the store must
    keep nothing of them."""

    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str, **options: Any) -> StoredObject:
        stored: StoredObject
        if not self.dice.hit("blob_put"):  # the chunks as they are (a store may read through them)
            stored = self.inner.put_stream(key, chunks, content_type=content_type, **options)
            return stored

        def failing() -> Iterator[bytes]:
            for chunk in chunks:
                yield chunk[: len(chunk) // 2]
                raise StorageError("injected storage fault", code="injected")

        stored = self.inner.put_stream(key, failing(), content_type=content_type, **options)
        return stored


class FaultyQueue(_Delegating):
    """``send`` and ``send_batch`` (callbacks go in batches), ``receive`` and ``ack`` fail before they reach
    the queue."""

    def _maybe_fail(self, kind: str) -> None:
        if self.dice.hit(kind):
            raise QueueError(f"injected queue fault ({kind})", code="injected")

    def send(self, body: Mapping[str, Any], *, delay: float = 0.0) -> str:
        self._maybe_fail("queue_send")
        return str(self.inner.send(body, delay=delay))

    def send_batch(self, bodies: Sequence[Mapping[str, Any]]) -> list[str]:
        self._maybe_fail("queue_send")
        sent: list[str] = self.inner.send_batch(bodies)
        return sent

    def receive(self, *, max_messages: int = 10, wait: float = 0.0) -> list[Message]:
        self._maybe_fail("queue_receive")
        messages: list[Message] = self.inner.receive(max_messages=max_messages, wait=wait)
        return messages

    def ack(self, message: Message) -> None:
        self._maybe_fail("queue_ack")
        self.inner.ack(message)


class FaultyBus(_Delegating):
    """``publish`` fails before anything is published; subscribers' queues are the real ones."""

    def publish(self, event: Mapping[str, Any]) -> None:
        if self.dice.hit("bus_publish"):
            raise QueueError("injected bus fault on publish", code="injected")
        self.inner.publish(event)


def faulty_build(rate: float, seed: int) -> Callable[[Settings], Relay]:
    """``build_relay`` with the blob store, ingest queue and event bus failing at ``rate``."""

    def build(settings: Settings) -> Relay:
        relay = build_relay(settings)
        if rate > 0:
            relay.blobs = FaultyBlobs(relay.blobs, Dice(rate, seed))
            relay.ingest_queue = FaultyQueue(relay.ingest_queue, Dice(rate, seed + 1))
            relay.bus = FaultyBus(relay.bus, Dice(rate, seed + 2))
        return relay

    return build
