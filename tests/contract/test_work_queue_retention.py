"""WorkQueue contract, retention: ``expire`` drops the messages nobody acknowledged in time (the local queue;
SQS does it itself and drops nothing here) and never a message sent after the time."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from handlers.adapters.local import SqliteWorkQueue
from handlers.adapters.local.queue import _EXPIRED, id_bound, message_id
from handlers.ports import Removed
from tests.contract.conftest import FakeClock, QueueFactory

DAY = 86_400.0


def test_expire_never_drops_a_message_sent_after_the_time(work_queue: QueueFactory) -> None:
    queue = work_queue()
    queue.send({"n": 1})
    assert queue.expire(time.time() - DAY) == Removed()
    assert [dict(m.body) for m in queue.receive(wait=1.0)] == [{"n": 1}]


def test_expire_drops_old_messages_received_or_not_and_dead(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(max_receives=1, visibility_timeout=30.0, clock=clock)
    queue.send({"state": "dead"})
    queue.receive(max_messages=1)
    clock.advance(60)
    queue.send({"state": "received"})
    queue.send({"state": "waiting"})
    assert [dict(m.body) for m in queue.receive(max_messages=1)] == [{"state": "received"}]  # "dead" is dead now
    clock.advance(DAY)
    queue.send({"state": "recent"})
    assert queue.depth() == {"visible": 3, "in_flight": 0, "dead": 1}
    removed = queue.expire(clock.now() - 1)
    assert removed == Removed(3, sum(len(f'{{"state":"{s}"}}') for s in ("dead", "received", "waiting")))
    assert [dict(m.body) for m in queue.receive()] == [{"state": "recent"}]
    assert queue.dead_letters() == []


def test_a_dry_run_counts_what_expire_drops_and_drops_nothing(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(clock=clock)
    for n in range(3):
        queue.send({"n": n})
    clock.advance(DAY)
    dry = queue.expire(clock.now(), dry_run=True)
    assert dry.count == 3
    assert queue.depth()["visible"] == 3
    assert queue.expire(clock.now()) == dry


def test_expire_stops_at_the_limit(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(clock=clock)
    for n in range(5):
        queue.send({"n": n})
    clock.advance(DAY)
    assert queue.expire(clock.now(), limit=2).count == 2
    assert queue.expire(clock.now()).count == 3


def test_message_ids_sent_before_a_time_sort_below_its_bound() -> None:
    assert message_id(1_000.0) < id_bound(1_000.001) <= message_id(1_000.001)


def test_the_local_expire_reads_the_queue_and_id_index(tmp_path: Path) -> None:
    queue = SqliteWorkQueue(tmp_path / "q.db", "work")
    queue.send({"n": 1})
    with sqlite3.connect(tmp_path / "q.db") as db:
        plan = " ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + _EXPIRED,
                                                     ("work", "work:dlq", "z", 1.0, 5)))
    queue.close()
    assert "(queue=? AND id<?)" in plan
