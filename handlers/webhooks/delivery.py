"""Deliver CloudEvents to webhook targets, signed per Standard Webhooks, with retries.

One POST per attempt: the CloudEvent JSON as the body (``content-type: application/json``),
``webhook-id`` = the CloudEvent ``id`` (the same on every retry: receivers dedupe on it),
``webhook-timestamp`` = now (fresh on every attempt), ``webhook-signature`` (one ``v1``
entry per secret). What the answer means:

    2xx               delivered: ack
    410 Gone          the receiver unsubscribed: logged, acked, never retried
    anything else     3xx (redirects are never followed), other 4xx, 5xx, timeouts,
                      connection failures: retried on :data:`RETRY_SCHEDULE`

Retries ride on the subscriber queue: a failed message is put back with
``retry_later(delay)``; the queue's ``max_receives`` bounds the attempts and then moves it
to the subscriber's DLQ by itself.
"""

from __future__ import annotations

import enum
import json
import random as _random
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from handlers import __version__
from handlers.app.settings import Settings
from handlers.base.errors import NotFound, UnsafeURL
from handlers.base.logs import get_logger
from handlers.ports import Message, Settles, WorkQueue, settle
from handlers.provider.evolink.client import parse_retry_after
from handlers.webhooks.config import WebhookTarget, load_targets
from handlers.webhooks.signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

__all__ = [
    "DEFAULT_MAX_BACKOFF",
    "DEFAULT_TIMEOUT",
    "RETRY_SCHEDULE",
    "USER_AGENT",
    "DeliveryResult",
    "Outcome",
    "WebhookDeliverer",
    "build_deliverer",
    "deliver_from_queue",
    "deliver_message",
    "retry_delay",
    "run_webhook_loop",
]

log = get_logger(__name__)

USER_AGENT = f"seedance-relay/{__version__} (+webhooks)"
DEFAULT_TIMEOUT = Settings().webhook_timeout  # RELAY_WEBHOOK_TIMEOUT's default
DEFAULT_MAX_BACKOFF = Settings().webhook_max_backoff  # RELAY_WEBHOOK_MAX_BACKOFF's default
#: Seconds to wait after failed attempt n (n = the message's receive count), from the spec's
#: example: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, then 24 h; capped at ``max_backoff``.
RETRY_SCHEDULE: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)
JITTER = 0.1


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    GONE = "gone"
    FAILED = "failed"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """One attempt. ``settled`` → ack; otherwise retry (``INVALID``: at once, to reach the DLQ)."""

    target: str
    event_id: str | None
    outcome: Outcome
    timestamp: int
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def settled(self) -> bool:
        return self.outcome in (Outcome.DELIVERED, Outcome.GONE)


def retry_delay(receive_count: int, *, max_backoff: float = DEFAULT_MAX_BACKOFF, retry_after: float | None = None,
                random: Callable[[], float] = _random.random) -> float:
    """Seconds before the next attempt after attempt ``receive_count`` failed.

    :data:`RETRY_SCHEDULE` with ±10 % jitter, at least the receiver's ``Retry-After``,
    at most ``max_backoff``.
    """
    step = RETRY_SCHEDULE[min(max(receive_count, 1), len(RETRY_SCHEDULE)) - 1]
    jittered = step * (1.0 + JITTER * (2.0 * random() - 1.0))
    return min(max_backoff, max(jittered, retry_after or 0.0))


class WebhookDeliverer:
    """POSTs events to ``targets`` (by name). Owns and closes ``client`` only if it made it.

    ``clock`` gives ``webhook-timestamp``; ``random`` (in [0, 1)) drives the jitter.
    """

    def __init__(self, targets: Iterable[WebhookTarget], *, client: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time, timeout: float = DEFAULT_TIMEOUT,
                 max_backoff: float = DEFAULT_MAX_BACKOFF, random: Callable[[], float] = _random.random) -> None:
        self._targets = {target.name: target for target in targets}
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False,
                                              headers={"User-Agent": USER_AGENT})
        self._clock = clock
        self._timeout = timeout
        self._random = random
        self.max_backoff = max_backoff

    @property
    def names(self) -> list[str]:
        return sorted(self._targets)

    def target(self, name: str) -> WebhookTarget:
        try:
            return self._targets[name]
        except KeyError:
            raise NotFound(f"no webhook target {name!r}", code="unknown_webhook") from None

    def deliver(self, target: str, event: Mapping[str, Any]) -> DeliveryResult:
        """One signed POST of ``event`` to webhook ``target``; never raises for HTTP failures."""
        spec = self.target(target)
        timestamp = int(self._clock())
        event_id = event.get("id")
        if not isinstance(event_id, str) or not event_id or "." in event_id:
            log.error("webhook.invalid_event", target=target, event_id=event_id)
            return DeliveryResult(target, None, Outcome.INVALID, timestamp, error="event id missing or invalid")
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {"content-type": "application/json", "user-agent": USER_AGENT, ID_HEADER: event_id,
                   TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(event_id, timestamp, body, spec.secrets)}
        result = self._post(spec, event_id, timestamp, body, headers)
        _log_result(result, spec)
        return result

    def retry_delay(self, result: DeliveryResult, receive_count: int) -> float:
        """When to try again after ``result`` (0 for an invalid event: let it reach the DLQ)."""
        if result.outcome is Outcome.INVALID:
            return 0.0
        return retry_delay(receive_count, max_backoff=self.max_backoff, retry_after=result.retry_after,
                           random=self._random)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _post(self, spec: WebhookTarget, event_id: str, timestamp: int, body: bytes,
              headers: Mapping[str, str]) -> DeliveryResult:
        def failed(error: str, status: int | None = None, retry_after: float | None = None) -> DeliveryResult:
            return DeliveryResult(spec.name, event_id, Outcome.FAILED, timestamp, status, error, retry_after)

        try:
            with self._client.stream("POST", spec.url, content=body, headers=headers, timeout=self._timeout,
                                     follow_redirects=False) as response:
                status = response.status_code
                retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
        except httpx.TimeoutException as exc:
            return failed(f"timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return failed(f"{type(exc).__name__}: {exc}")
        except UnsafeURL as exc:  # an injected guarded client refused the address
            return failed(exc.message)
        if 200 <= status < 300:
            return DeliveryResult(spec.name, event_id, Outcome.DELIVERED, timestamp, status)
        if status == 410:
            return DeliveryResult(spec.name, event_id, Outcome.GONE, timestamp, status)
        return failed(f"HTTP {status}", status, retry_after)


def _log_result(result: DeliveryResult, spec: WebhookTarget) -> None:
    context = {"target": spec.name, "host": spec.host, "event_id": result.event_id, "status": result.status}
    if result.outcome is Outcome.DELIVERED:
        log.info("webhook.delivered", **context)
    elif result.outcome is Outcome.GONE:
        log.warning("webhook.gone", **context, note="the receiver answered 410 Gone: event dropped; "
                    "remove the webhook from RELAY_WEBHOOKS if it has unsubscribed for good")
    else:
        log.warning("webhook.failed", **context, error=result.error)


def deliver_message(deliverer: WebhookDeliverer, target: str, queue: Settles, message: Message) -> DeliveryResult:
    """Deliver one queued event and settle its message (:func:`handlers.ports.settle`): acked when the
    delivery is settled, else visible again after the backoff delay."""
    result = deliverer.deliver(target, message.body)
    delay = 0.0
    if not result.settled:
        delay = deliverer.retry_delay(result, message.receive_count)
        log.info("webhook.retry_scheduled", target=target, event_id=result.event_id,
                 attempt=message.receive_count, delay=round(delay, 3))
    settle(queue, message, done=result.settled, delay=delay)
    return result


def deliver_from_queue(deliverer: WebhookDeliverer, target: str, queue: WorkQueue, *, wait: float = 0.0,
                       max_messages: int = 1) -> int:
    """Receive up to ``max_messages`` from ``target``'s subscriber queue and settle each; return how many.

    One message per receive by default, so that a slow receiver (``timeout`` per attempt)
    cannot outlast the queue's visibility timeout for the messages still waiting in a batch.
    """
    messages = queue.receive(max_messages=max_messages, wait=wait)
    for message in messages:
        deliver_message(deliverer, target, queue, message)
    return len(messages)


def run_webhook_loop(deliverer: WebhookDeliverer, target: str, queue: WorkQueue, stop: threading.Event, *,
                     wait: float = 0.5, pause: float = 1.0) -> None:
    """:func:`deliver_from_queue` until ``stop`` is set (a local runtime thread's body)."""
    while not stop.is_set():
        try:
            deliver_from_queue(deliverer, target, queue, wait=wait)
        except Exception:
            log.exception("webhook.batch_failed", target=target)
            stop.wait(pause)


def build_deliverer(settings: Settings, *, names: Collection[str] | None = None, client: httpx.Client | None = None,
                    clock: Callable[[], float] = time.time) -> WebhookDeliverer:
    """The deliverer for every configured webhook (or ``names``), from ``settings``: its
    ``webhook_timeout`` per attempt and ``webhook_max_backoff`` as the longest wait between attempts."""
    return WebhookDeliverer(load_targets(settings, names=names), client=client, clock=clock,
                            timeout=settings.webhook_timeout, max_backoff=settings.webhook_max_backoff)
