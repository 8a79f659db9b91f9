"""A small helper for downstream teams consuming the relay's events from SQS in Lambda.

It unwraps each record (raw delivery, or an SNS notification envelope), parses and checks
the CloudEvent, skips event ids it has already handled, and reports partial batch
failures so that only the failed records come back::

    from handlers.consumer import EventConsumer, CloudEvent

    def on_event(event: CloudEvent) -> None:
        print(event.type, event.data["outputs"])

    handler = EventConsumer(on_event, types={"io.seedance-relay.job.completed"})

Deduplication is per container by default (an LRU of recent ids). Delivery is at least
once, so for effects that must happen once across containers pass a ``seen`` store backed
by something shared (a DynamoDB conditional put on the event id, for instance).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from handlers.adapters.aws.sqs_batch import Record, batch_response, records
from handlers.base.errors import InvalidRequest, Violation
from handlers.base.jsonbody import parse_object
from handlers.base.logs import get_logger

__all__ = ["CloudEvent", "EventConsumer", "MemorySeen", "SeenStore", "parse_cloudevent", "unwrap"]

log = get_logger(__name__)
_REQUIRED = ("id", "source", "type")


@dataclass(frozen=True, slots=True)
class CloudEvent:
    id: str
    source: str
    type: str
    subject: str | None
    time: str | None
    data: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False)


class SeenStore(Protocol):
    def seen(self, event_id: str) -> bool:
        """Whether ``event_id`` was handled already."""
        ...

    def remember(self, event_id: str) -> None:
        """Record ``event_id`` as handled (called only after the handler succeeded)."""
        ...


class MemorySeen:
    """The last ``size`` event ids this container handled."""

    def __init__(self, size: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def seen(self, event_id: str) -> bool:
        return event_id in self._ids

    def remember(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)


def unwrap(body: str) -> Mapping[str, Any]:
    """The event JSON from a raw-delivery body or an SNS notification envelope."""
    outer = parse_object(body, what="the message", field="body")
    if outer.get("Type") == "Notification" and "Message" in outer:
        return parse_object(outer["Message"], what="the SNS message", field="body")
    return outer


def parse_cloudevent(value: Mapping[str, Any]) -> CloudEvent:
    problems = [Violation(name, "required", f"CloudEvent attribute {name!r} must be a non-empty string")
                for name in _REQUIRED if not isinstance(value.get(name), str) or not value.get(name)]
    if value.get("specversion") != "1.0":
        problems.append(Violation("specversion", "invalid_choice", "specversion must be '1.0'"))
    data = value.get("data", {})
    if not isinstance(data, Mapping):
        problems.append(Violation("data", "invalid_type", "data must be a JSON object"))
    if problems:
        raise InvalidRequest(problems)
    return CloudEvent(id=value["id"], source=value["source"], type=value["type"], subject=value.get("subject"),
                      time=value.get("time"), data=data, raw=dict(value))


class EventConsumer:
    """A Lambda handler for an SQS queue subscribed to the relay's topic."""

    def __init__(self, handle: Callable[[CloudEvent], None], *, types: Collection[str] | None = None,
                 seen: SeenStore | None = None) -> None:
        self._handle = handle
        self._types = frozenset(types) if types is not None else None
        self._seen = seen or MemorySeen()

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        return batch_response(records(event), self._one)

    def _one(self, record: Record) -> bool:
        try:
            event = parse_cloudevent(unwrap(record.body))
        except InvalidRequest as exc:
            log.error("consumer.invalid_event", message_id=record.message_id, error=exc.message)
            return False  # retried, then dead-lettered where a person can look at it
        if self._types is not None and event.type not in self._types:
            return True
        if self._seen.seen(event.id):
            log.info("consumer.duplicate", event_id=event.id)
            return True
        self._handle(event)
        self._seen.remember(event.id)
        return True
