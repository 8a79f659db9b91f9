"""EventLog contract: what the bus published, in publish order, by time range, type and tenant, within retention.

Each backend's log is read beside the bus that writes it, both on one fake clock: the SQLite bus and its
``events`` table, and the SNS bus whose DynamoDB event ledger is the log (moto in server mode).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from handlers.adapters.aws import DynamoEventLedger, SnsEventBus
from handlers.adapters.aws.bootstrap import bootstrap
from handlers.adapters.aws.eventlog import DynamoEventLog
from handlers.adapters.local import SqliteEventBus, SqliteEventLog
from handlers.base.errors import InvalidRequest
from handlers.ports import EventBus, EventLog, LoggedEvent
from tests.contract.conftest import BACKENDS, _aws_clients, _backend, aws_names, close
from tests.support.fakes import Clock

COMPLETED, FAILED = "io.seedance-relay.job.completed", "io.seedance-relay.job.failed"
RETENTION_DAYS = 30
DAY = 86_400.0


@dataclass
class LoggedBus:
    """A bus and the log of what it published, on one fake clock."""

    bus: EventBus
    log: EventLog
    clock: Clock

    def publish(self, event_id: str, event_type: str = COMPLETED, tenant: str | None = "acme",
                **data: Any) -> dict[str, Any]:
        event = {"specversion": "1.0", "id": event_id, "source": "urn:seedance-relay", "type": event_type,
                 "subject": "job_" + event_id, "datacontenttype": "application/json",
                 "data": {"job_id": "job_" + event_id, **data}}
        if tenant is not None:
            event["tenant"] = tenant
        self.bus.publish(event)
        return event

    def read_all(self, limit: int = 100, **query: Any) -> list[LoggedEvent]:
        """Every page of ``query``, following the cursors."""
        found: list[LoggedEvent] = []
        cursor: str | None = None
        for _ in range(1000):
            page, cursor = self.log.page(cursor=cursor, limit=limit, **query)
            assert len(page) <= limit
            found += page
            if cursor is None:
                return found
        raise AssertionError("the cursors never ended")

    def ids(self, **query: Any) -> list[str]:
        return [str(logged.event["id"]) for logged in self.read_all(**query)]


def _local(folder: Path, clock: Clock) -> tuple[EventBus, EventLog]:
    bus = SqliteEventBus(folder / "events.db", {"all": ["*"]}, clock=clock.now, sleep=clock.sleep)
    return bus, SqliteEventLog(folder / "events.db", retention_days=RETENTION_DAYS, clock=clock.now)


def _aws(folder: Path, clock: Clock) -> tuple[EventBus, EventLog]:
    clients, names = _aws_clients(), aws_names(folder)
    result = bootstrap(clients, names, {"all": ["*"]})
    ledger = DynamoEventLedger(clients.dynamodb, names.table, clock=clock.now, sleep=clock.sleep,
                               ttl_days=RETENTION_DAYS)
    bus = SnsEventBus(clients.sns, clients.sqs, result.topic_arn,
                      {name: pair.url for name, pair in result.subscriber_queues.items()}, ledger=ledger)
    return bus, DynamoEventLog(clients.dynamodb, names.table, retention_days=RETENTION_DAYS, clock=clock.now)


LOGGED_BUSES: dict[str, Callable[[Path, Clock], tuple[EventBus, EventLog]]] = {"local": _local, "aws": _aws}


@pytest.fixture(params=BACKENDS)
def logged(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LoggedBus]:
    clock = Clock()
    bus, log = LOGGED_BUSES[_backend(request)](tmp_path, clock)
    yield LoggedBus(bus, log, clock)
    close(log)
    close(bus)


def _spaced(logged: LoggedBus, count: int, step: float = 1.0, **publish: Any) -> list[str]:
    ids = []
    for n in range(count):
        ids.append(logged.publish(f"evt-{n:02d}", **publish)["id"])
        logged.clock.advance(step)
    return ids


def test_the_log_returns_each_published_event_unchanged_in_publish_order(logged: LoggedBus) -> None:
    first = logged.publish("evt-b", size=1)
    logged.clock.advance(0.5)
    second = logged.publish("evt-a", FAILED, tenant=None)
    page, cursor = logged.log.page()
    assert [dict(entry.event) for entry in page] == [first, second]
    assert [entry.published_at for entry in page] == pytest.approx([logged.clock.now() - 0.5, logged.clock.now()])
    assert cursor is None


def test_an_event_published_twice_is_logged_once(logged: LoggedBus) -> None:
    logged.publish("evt-1")
    logged.clock.advance(1)
    logged.publish("evt-1")
    assert logged.ids() == ["evt-1"]


def test_pages_follow_their_cursors_through_every_event_once(logged: LoggedBus) -> None:
    ids = _spaced(logged, 7)
    assert logged.ids(limit=3) == ids


def test_since_is_inclusive_and_until_exclusive(logged: LoggedBus) -> None:
    start = logged.clock.now()
    _spaced(logged, 5, step=10.0)
    assert logged.ids(since=start + 10, until=start + 30) == ["evt-01", "evt-02"]


def test_a_range_across_days_reads_in_publish_order_and_pages_across_the_day_boundary(logged: LoggedBus) -> None:
    start = logged.clock.now()
    ids = _spaced(logged, 6, step=DAY / 2)
    assert logged.ids(since=start - DAY) == ids
    assert logged.ids(since=start + DAY, limit=1) == ids[2:]


def test_types_select_the_events_of_those_types(logged: LoggedBus) -> None:
    logged.publish("evt-1", COMPLETED)
    logged.publish("evt-2", FAILED)
    logged.publish("evt-3", "io.seedance-relay.job.expired")
    assert logged.ids(types=[FAILED, "io.seedance-relay.job.expired"]) == ["evt-2", "evt-3"]
    assert logged.ids(types=[]) == []


def test_tenants_select_their_events_and_an_event_without_a_tenant_matches_none(logged: LoggedBus) -> None:
    logged.publish("evt-1", tenant="acme")
    logged.publish("evt-2", tenant="beta")
    logged.publish("evt-3", tenant=None)
    assert logged.ids(tenants=["beta"]) == ["evt-2"]
    assert logged.ids(tenants=["acme", "beta"]) == ["evt-1", "evt-2"]
    assert logged.ids() == ["evt-1", "evt-2", "evt-3"]


def test_filters_apply_across_pages_without_losing_or_repeating_events(logged: LoggedBus) -> None:
    for n in range(9):
        logged.publish(f"evt-{n}", COMPLETED if n % 3 else FAILED, tenant="acme" if n % 2 else "beta")
        logged.clock.advance(1)
    assert logged.ids(types=[COMPLETED], tenants=["acme"], limit=1) == ["evt-1", "evt-5", "evt-7"]


def test_events_older_than_the_retention_are_not_returned(logged: LoggedBus) -> None:
    logged.publish("evt-old")
    logged.clock.advance(RETENTION_DAYS * DAY - 60)
    logged.publish("evt-new")
    assert logged.ids() == ["evt-old", "evt-new"]
    logged.clock.advance(120)
    assert logged.ids() == ["evt-new"]
    assert logged.ids(since=0.0) == ["evt-new"]


def test_a_cursor_the_log_did_not_give_out_is_refused(logged: LoggedBus) -> None:
    logged.publish("evt-1")
    with pytest.raises(InvalidRequest, match="cursor"):
        logged.log.page(cursor="not-a-cursor")


def test_an_empty_log_answers_an_empty_page_and_no_cursor(logged: LoggedBus) -> None:
    assert logged.log.page() == ([], None)


def test_purge_deletes_the_local_events_published_before_a_time(tmp_path: Path) -> None:
    """The local log's clean-up (on AWS the table's TTL removes items past ``expires_at``)."""
    clock = Clock()
    bus, log = _local(tmp_path, clock)
    logged = LoggedBus(bus, log, clock)
    _spaced(logged, 3, step=10.0)
    assert isinstance(log, SqliteEventLog)
    assert log.purge(clock.now() - 15) == 2
    assert logged.ids() == ["evt-02"]
    close(log)
    close(bus)
