"""The replay use case on the local adapters: what reaches the subscriber's queue, and what does not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers.adapters.local import SqliteEventBus, SqliteEventLog
from handlers.base.errors import InvalidRequest
from handlers.ports import WorkQueue
from handlers.usecases.replay import ReplayRequest, ReplaySummary, replay
from tests.support.fakes import Clock

COMPLETED, FAILED = "io.seedance-relay.job.completed", "io.seedance-relay.job.failed"
FILTERS = {"default": ["*"], "late": ["*"], "crm": [COMPLETED, "tenant:acme"]}


def event(n: int, event_type: str = COMPLETED, tenant: str = "acme") -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"evt-{n:02d}", "source": "urn:seedance-relay", "type": event_type,
            "subject": f"job-{n}", "tenant": tenant, "data": {"job_id": f"job-{n}"}}


def drain(queue: WorkQueue) -> list[str]:
    ids: list[str] = []
    while messages := queue.receive(max_messages=10):
        for message in messages:
            ids.append(str(message.body["id"]))
            queue.ack(message)
    return ids


class Bench:
    """A bus that published ``events`` for subscriber ``default`` only, then one that knows every
    subscriber in ``FILTERS``, and the log, on one fake clock."""

    def __init__(self, folder: Path, events: list[dict[str, Any]]) -> None:
        self.clock = Clock()
        before = SqliteEventBus(folder / "relay.sqlite3", {"default": ["*"]}, clock=self.clock.now)
        for item in events:
            before.publish(item)
            self.clock.advance(1)
        before.close()
        self.bus = SqliteEventBus(folder / "relay.sqlite3", FILTERS, clock=self.clock.now)
        self.log = SqliteEventLog(folder / "relay.sqlite3", clock=self.clock.now)

    def replay(self, request: ReplayRequest, batch: int = 100) -> ReplaySummary:
        return replay(self.log, self.bus, FILTERS, request, now=self.clock.now(), batch=batch)

    def close(self) -> None:
        self.log.close()
        self.bus.close()


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    made = Bench(tmp_path, [event(n, FAILED if n % 3 == 0 else COMPLETED, "beta" if n % 4 == 0 else "acme")
                            for n in range(1, 8)])
    yield made
    made.close()


def test_every_logged_event_reaches_the_subscriber_in_publish_order_across_batches(bench: Bench) -> None:
    start = bench.clock.now() - 7
    summary = bench.replay(ReplayRequest("late"), batch=2)
    assert drain(bench.bus.subscriber("late")) == [f"evt-{n:02d}" for n in range(1, 8)]
    assert summary == ReplaySummary("late", 7, start, start + 6, "evt-01", "evt-07")


def test_only_the_subscribers_queue_gets_the_replay(bench: Bench) -> None:
    drain(bench.bus.subscriber("default"))
    bench.replay(ReplayRequest("late"))
    assert drain(bench.bus.subscriber("default")) == [] and drain(bench.bus.subscriber("crm")) == []


def test_a_filtered_subscriber_gets_only_what_its_filter_lets_through(bench: Bench) -> None:
    summary = bench.replay(ReplayRequest("crm"))
    assert drain(bench.bus.subscriber("crm")) == ["evt-01", "evt-02", "evt-05", "evt-07"]
    assert summary.count == 4


def test_since_type_and_tenant_narrow_the_replay(bench: Bench) -> None:
    bench.replay(ReplayRequest("late", since=bench.clock.now() - 4, types=("failed",), tenant="acme"))
    assert drain(bench.bus.subscriber("late")) == ["evt-06"]


def test_events_published_after_the_replay_began_are_left_to_the_live_fan_out(bench: Bench) -> None:
    began = bench.clock.now()
    bench.clock.advance(5)
    bench.bus.publish(event(9))
    summary = bench.replay(ReplayRequest("late", until=began))
    assert drain(bench.bus.subscriber("late")) == ["evt-09"] + [f"evt-{n:02d}" for n in range(1, 8)]
    assert summary.count == 7 and summary.last_id == "evt-07"


def test_nothing_to_replay_sends_nothing_and_says_so(bench: Bench) -> None:
    assert bench.replay(ReplayRequest("late", since=bench.clock.now() - 0.5)) == ReplaySummary("late")
    assert drain(bench.bus.subscriber("late")) == []


def test_an_unknown_subscriber_is_refused_naming_the_configured_ones(bench: Bench) -> None:
    with pytest.raises(InvalidRequest, match=r"no subscriber 'later'; configured: default, late, crm") as caught:
        bench.replay(ReplayRequest("later"))
    assert caught.value.violations[0].field == "subscriber"
