"""The consumer helper: unwraps SNS-in-SQS or raw bodies, checks CloudEvents, dedupes, reports failures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers.base.errors import InvalidRequest
from handlers.consumer import CloudEvent, EventConsumer, MemorySeen, parse_cloudevent
from tests.support.events import sns_sqs_event, sqs_event

EVENT = {"specversion": "1.0", "id": "e1", "source": "urn:seedance-relay", "type": "io.seedance-relay.job.completed",
         "subject": "job_1", "data": {"outputs": [{"uri": "s3://b/k.mp4"}]}}


class Collector:
    def __init__(self, fail_on: set[str] | None = None) -> None:
        self.events: list[CloudEvent] = []
        self.fail_on = fail_on or set()

    def __call__(self, event: CloudEvent) -> None:
        if event.id in self.fail_on:
            raise RuntimeError("downstream is down")
        self.events.append(event)


def test_unwraps_sns_envelopes_from_the_real_payload_shape() -> None:
    collector = Collector()
    response = EventConsumer(collector)(sns_sqs_event(EVENT))
    assert response == {"batchItemFailures": []} and collector.events[0].subject == "job_1"


def test_reads_raw_delivery_bodies() -> None:
    collector = Collector()
    EventConsumer(collector)(sqs_event(json.dumps(EVENT), fixture="aws-events/aws-lambda-go__sqs-event.json"))
    assert [e.id for e in collector.events] == ["e1"]


def test_duplicates_are_handled_once() -> None:
    collector = Collector()
    consumer = EventConsumer(collector)
    consumer(sqs_event(json.dumps(EVENT), json.dumps(EVENT)))
    consumer(sns_sqs_event(EVENT))
    assert len(collector.events) == 1


def test_only_failed_records_are_reported_and_they_are_retried() -> None:
    second = {**EVENT, "id": "e2"}
    collector = Collector(fail_on={"e2"})
    consumer = EventConsumer(collector)
    event = sqs_event(json.dumps(EVENT), json.dumps(second), "not json", json.dumps({"id": "x"}))
    response = consumer(event)
    ids = [r["messageId"] for r in event["Records"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": i} for i in ids[1:]]}
    collector.fail_on.clear()
    consumer(sqs_event(json.dumps(second)))
    assert [e.id for e in collector.events] == ["e1", "e2"]


def test_types_outside_the_filter_are_acknowledged_without_handling() -> None:
    collector = Collector()
    EventConsumer(collector, types={"io.seedance-relay.job.failed"})(sqs_event(json.dumps(EVENT)))
    assert collector.events == []


@pytest.mark.parametrize(("change", "field"), [({"id": ""}, "id"), ({"specversion": "0.3"}, "specversion"),
                                               ({"data": [1]}, "data"), ({"type": None}, "type")])
def test_invalid_cloudevents_name_the_attribute(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_cloudevent({**EVENT, **change})
    assert [v.field for v in info.value.violations] == [field]


def test_memory_seen_forgets_the_oldest() -> None:
    seen = MemorySeen(size=2)
    for event_id in ("a", "b", "c"):
        seen.remember(event_id)
    assert (seen.seen("a"), seen.seen("b"), seen.seen("c")) == (False, True, True)
