"""RELAY_SUBSCRIBERS as both event buses apply it: a filter naming ``storyboard.completed`` gets storyboard events.

The filters come from :func:`handlers.app.wiring.subscriber_filters` over real settings, as the relay builds
them; the events are the documented examples (a job's, a storyboard's), as the relay publishes them. On the
aws backend the filter becomes the SNS subscription's filter policy, so SNS itself does the routing.
"""

from __future__ import annotations

from handlers.app.settings import Settings
from handlers.app.wiring import subscriber_filters
from handlers.ports import WorkQueue
from handlers.tooling.docgen import example_event
from tests.contract.conftest import BusFactory

STORYBOARD_COMPLETED = "io.seedance-relay.storyboard.completed"
STORYBOARD_FAILED = "io.seedance-relay.storyboard.failed"


def received_types(queue: WorkQueue) -> list[str]:
    """The types of the events waiting in ``queue``, sorted (SQS does not keep order; acked as they are read)."""
    types: list[str] = []
    while messages := queue.receive(max_messages=10):
        for message in messages:
            types.append(message.body["type"])
            queue.ack(message)
    return sorted(types)


def publish_one_of_each(bus_factory: BusFactory, subscribers: str) -> dict[str, list[str]]:
    """Publish a job's completed and failed events and a storyboard's completed and failed events to a bus
    built from ``RELAY_SUBSCRIBERS=subscribers``; what each subscriber received, by type."""
    filters = subscriber_filters(Settings.from_env({"RELAY_SUBSCRIBERS": subscribers}))
    bus = bus_factory(filters)
    for name in ("completed", STORYBOARD_COMPLETED, "failed", STORYBOARD_FAILED):
        bus.publish(example_event(name))
    return {name: received_types(bus.subscriber(name)) for name in filters}


def test_a_subscriber_filtered_on_storyboard_completed_gets_that_event_and_no_job_event(
        event_bus: BusFactory) -> None:
    got = publish_one_of_each(event_bus, "art:storyboard.completed")
    assert got == {"art": [STORYBOARD_COMPLETED]}


def test_storyboard_and_job_types_mix_in_one_filter(event_bus: BusFactory) -> None:
    got = publish_one_of_each(event_bus, "art:storyboard.completed+completed,ops:storyboard.failed+failed")
    assert got == {"art": ["io.seedance-relay.job.completed", STORYBOARD_COMPLETED],
                   "ops": ["io.seedance-relay.job.failed", STORYBOARD_FAILED]}


def test_a_full_storyboard_type_filters_like_its_short_name(event_bus: BusFactory) -> None:
    got = publish_one_of_each(event_bus, f"art:{STORYBOARD_COMPLETED}")
    assert got == {"art": [STORYBOARD_COMPLETED]}


def test_a_storyboard_filter_with_a_tenant_keeps_other_tenants_storyboards_out(event_bus: BusFactory) -> None:
    """The documented storyboard events are the tenant ``default``'s."""
    got = publish_one_of_each(event_bus, "mine:storyboard.completed@default,theirs:storyboard.completed@acme")
    assert got == {"mine": [STORYBOARD_COMPLETED], "theirs": []}
