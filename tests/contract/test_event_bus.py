"""EventBus contract: type-filtered fan-out to subscriber queues, once per CloudEvent id."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from handlers.base.errors import NotFound, QueueError
from handlers.ports import EventBus, WorkQueue
from tests.contract.conftest import BusFactory

COMPLETED = "ai.seedance-relay.job.completed"
FAILED = "ai.seedance-relay.job.failed"
SUBSCRIBERS = {"archive": ["*"], "notify": [COMPLETED], "alerts": [FAILED, "ai.seedance-relay.job.expired"]}


def cloud_event(event_id: str, event_type: str = COMPLETED, **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "seedance-relay", "type": event_type,
            "subject": "job_a", "datacontenttype": "application/json", "data": {"job_id": "job_a", **data}}


def drain_ids(queue: WorkQueue) -> list[str]:
    """The event ids waiting in ``queue``, in order (acked as they are read)."""
    ids: list[str] = []
    while messages := queue.receive(max_messages=10):
        for message in messages:
            ids.append(message.body["id"])
            queue.ack(message)
    return ids


def event_log(bus: EventBus) -> Any:
    """The bus's ``events`` log reader, or skip on a backend that keeps no log."""
    reader = getattr(bus, "events", None)
    if reader is None:
        pytest.skip("this event bus keeps no event log")
    return reader


def test_a_subscriber_receives_the_event_as_published(event_bus: BusFactory) -> None:
    bus = event_bus({"notify": [COMPLETED]})
    event = cloud_event("evt-1", size=1024)
    bus.publish(event)
    (message,) = bus.subscriber("notify").receive()
    assert dict(message.body) == event


def test_fan_out_follows_each_subscribers_type_filter(event_bus: BusFactory) -> None:
    bus = event_bus(SUBSCRIBERS)
    bus.publish(cloud_event("evt-1", COMPLETED))
    bus.publish(cloud_event("evt-2", FAILED))
    bus.publish(cloud_event("evt-3", "ai.seedance-relay.job.cancelled"))
    got = {name: drain_ids(bus.subscriber(name)) for name in SUBSCRIBERS}
    assert got == {"archive": ["evt-1", "evt-2", "evt-3"], "notify": ["evt-1"], "alerts": ["evt-2"]}


def test_publishing_the_same_event_id_again_fans_out_once(event_bus: BusFactory) -> None:
    bus = event_bus(SUBSCRIBERS)
    bus.publish(cloud_event("evt-1"))
    bus.publish(cloud_event("evt-1"))
    assert drain_ids(bus.subscriber("archive")) == ["evt-1"]
    assert drain_ids(bus.subscriber("notify")) == ["evt-1"]


def test_each_subscriber_acks_on_its_own(event_bus: BusFactory) -> None:
    bus = event_bus({"a": ["*"], "b": ["*"]})
    bus.publish(cloud_event("evt-1"))
    assert drain_ids(bus.subscriber("a")) == ["evt-1"]
    assert drain_ids(bus.subscriber("b")) == ["evt-1"]


def test_an_unknown_subscriber_raises_not_found(event_bus: BusFactory) -> None:
    with pytest.raises(NotFound, match="nobody"):
        event_bus(SUBSCRIBERS).subscriber("nobody")


@pytest.mark.parametrize("event", [{"type": COMPLETED}, {"id": "evt-1"}, {"id": "", "type": COMPLETED}])
def test_an_event_without_id_or_type_is_refused(event_bus: BusFactory, event: dict[str, Any]) -> None:
    with pytest.raises(QueueError, match="'id' and 'type'"):
        event_bus(SUBSCRIBERS).publish(event)


def test_events_lists_the_log_in_publish_order(event_bus: BusFactory) -> None:
    bus = event_bus(SUBSCRIBERS)
    for n, event_type in enumerate([FAILED, COMPLETED, COMPLETED, FAILED]):
        bus.publish(cloud_event(f"evt-{n}", event_type))
    bus.publish(cloud_event("evt-0", FAILED))
    log = event_log(bus)()
    assert [event["id"] for _, event in log] == ["evt-0", "evt-1", "evt-2", "evt-3"]
    assert [seq for seq, _ in log] == sorted(seq for seq, _ in log)


def test_events_pages_after_a_sequence_number_and_filters_by_type(event_bus: BusFactory) -> None:
    bus = event_bus(SUBSCRIBERS)
    for n, event_type in enumerate([FAILED, COMPLETED, COMPLETED, FAILED]):
        bus.publish(cloud_event(f"evt-{n}", event_type))
    events = event_log(bus)
    first = events(limit=2)
    rest = events(after=first[-1][0], limit=10)
    assert [e["id"] for _, e in first + rest] == ["evt-0", "evt-1", "evt-2", "evt-3"]
    assert [e["id"] for _, e in events(types=[COMPLETED])] == ["evt-1", "evt-2"]


def test_subscriber_names_lists_the_configured_subscribers(event_bus: BusFactory) -> None:
    bus = event_bus(SUBSCRIBERS)
    names = getattr(bus, "subscriber_names", None)
    if names is None:
        pytest.skip("this event bus does not list its subscribers")
    assert names() == ["alerts", "archive", "notify"]


def test_racing_publishers_of_one_event_fan_it_out_once(event_bus: BusFactory) -> None:
    bus = event_bus(SUBSCRIBERS)
    barrier = threading.Barrier(8)

    def publish() -> None:
        barrier.wait()
        bus.publish(cloud_event("evt-race"))

    threads = [threading.Thread(target=publish) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert drain_ids(bus.subscriber("archive")) == ["evt-race"]
