"""WorkQueue contract: at-least-once delivery with a visibility timeout, receive counts and a DLQ.

Time is a fake clock everywhere but one test, so nothing sleeps; the concurrency tests
race real threads and real OS processes over one queue.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from pathlib import Path

import pytest

from handlers.adapters.local import SqliteWorkQueue
from handlers.base.errors import QueueError
from handlers.ports import Message
from tests.contract.conftest import AT_LEAST_ONCE_ONLY, FakeClock, QueueFactory
from tests.support.queues import drain, drain_in_processes

BATCH = 500


def only(messages: list[Message]) -> Message:
    assert len(messages) == 1, messages
    return messages[0]


def test_send_receive_ack_round_trip(work_queue: QueueFactory) -> None:
    queue = work_queue()
    message_id = queue.send({"job_id": "job_a", "n": 1})
    message = only(queue.receive())
    assert (message.id, dict(message.body), message.receive_count) == (message_id, {"job_id": "job_a", "n": 1}, 1)
    queue.ack(message)
    assert queue.receive() == []
    assert queue.depth() == {"visible": 0, "in_flight": 0, "dead": 0}


def test_receive_hands_out_the_oldest_first_and_at_most_max_messages(work_queue: QueueFactory) -> None:
    queue = work_queue()
    sent = [queue.send({"n": n}) for n in range(5)]
    assert [m.id for m in queue.receive(max_messages=3)] == sent[:3]
    assert [m.id for m in queue.receive(max_messages=3)] == sent[3:]


def test_a_received_message_is_invisible_until_its_timeout(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(visibility_timeout=30.0, clock=clock)
    queue.send({"n": 1})
    queue.receive()
    clock.advance(29.9)
    assert queue.receive() == []
    assert queue.depth() == {"visible": 0, "in_flight": 1, "dead": 0}


def test_an_unacked_message_comes_back_after_the_timeout(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(visibility_timeout=30.0, clock=clock)
    queue.send({"n": 1})
    first = only(queue.receive())
    clock.advance(30.0)
    second = only(queue.receive())
    assert (second.id, second.receive_count) == (first.id, 2)
    assert second.receipt != first.receipt


def test_an_ack_with_a_stale_receipt_is_a_no_op(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(visibility_timeout=30.0, clock=clock)
    queue.send({"n": 1})
    stale = only(queue.receive())
    clock.advance(31.0)
    current = only(queue.receive())
    queue.ack(stale)
    assert queue.depth()["in_flight"] == 1
    queue.ack(current)
    assert queue.depth() == {"visible": 0, "in_flight": 0, "dead": 0}


def test_retry_later_hides_the_message_for_the_delay(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(visibility_timeout=30.0, clock=clock)
    queue.send({"n": 1})
    queue.retry_later(only(queue.receive()), 5.0)
    clock.advance(4.9)
    assert queue.receive() == []
    clock.advance(0.1)
    assert only(queue.receive()).receive_count == 2


def test_retry_later_with_a_stale_receipt_is_a_no_op(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(visibility_timeout=30.0, clock=clock)
    queue.send({"n": 1})
    stale = only(queue.receive())
    clock.advance(30.0)
    only(queue.receive())
    queue.retry_later(stale, 0.0)
    assert queue.receive() == []


def test_a_delayed_send_stays_invisible_until_the_delay(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(clock=clock)
    queue.send({"n": 1}, delay=10.0)
    assert queue.receive() == []
    clock.advance(10.0)
    assert only(queue.receive()).body == {"n": 1}


def test_a_message_is_dead_lettered_after_max_receives(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(visibility_timeout=10.0, max_receives=3, clock=clock)
    message_id = queue.send({"poison": True})
    counts = []
    for _ in range(3):
        counts.append(only(queue.receive()).receive_count)
        clock.advance(10.0)
    assert counts == [1, 2, 3]
    assert queue.receive() == []
    dead = only(queue.dead_letters())
    assert (dead.id, dict(dead.body), dead.receive_count) == (message_id, {"poison": True}, 3)
    assert queue.depth() == {"visible": 0, "in_flight": 0, "dead": 1}


def test_dead_lettering_does_not_starve_the_healthy_messages(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(visibility_timeout=10.0, max_receives=1, clock=clock)
    poison = [queue.send({"poison": n}) for n in range(3)]
    queue.receive(max_messages=3)
    clock.advance(10.0)
    healthy = queue.send({"healthy": True})
    assert [m.id for m in queue.receive(max_messages=1)] == [healthy]
    assert sorted(m.id for m in queue.dead_letters()) == sorted(poison)


def test_redrive_moves_dead_letters_back_with_a_fresh_count(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(visibility_timeout=10.0, max_receives=1, clock=clock)
    message_id = queue.send({"n": 1})
    queue.receive()
    clock.advance(10.0)
    assert queue.receive() == []
    assert queue.redrive() == 1
    assert queue.dead_letters() == []
    again = only(queue.receive())
    assert (again.id, again.receive_count) == (message_id, 1)


def test_depth_counts_visible_in_flight_and_dead(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(visibility_timeout=10.0, max_receives=1, clock=clock)
    queue.send({"poison": True})
    queue.receive()
    clock.advance(10.0)
    assert queue.receive() == []
    queue.send({"n": 1})
    queue.send({"n": 2})
    queue.receive(max_messages=1)
    assert queue.depth() == {"visible": 1, "in_flight": 1, "dead": 1}


def test_receive_waits_for_a_message_that_becomes_visible(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(clock=clock)
    queue.send({"n": 1}, delay=0.5)
    start = clock.now()
    assert only(queue.receive(wait=5.0)).body == {"n": 1}
    assert 0.5 <= clock.now() - start < 1.0


def test_receive_gives_up_after_wait_with_nothing(work_queue: QueueFactory, clock: FakeClock) -> None:
    queue = work_queue(clock=clock)
    start = clock.now()
    assert queue.receive(wait=2.0) == []
    assert clock.now() - start >= 2.0


def test_queues_with_different_names_keep_their_messages_apart(work_queue: QueueFactory) -> None:
    ingest, submit = work_queue("ingest"), work_queue("submit")
    ingest.send({"to": "ingest"})
    assert submit.receive() == []
    assert only(ingest.receive()).body == {"to": "ingest"}


def test_messages_outlive_the_queue_object(work_queue: QueueFactory) -> None:
    work_queue("durable").send({"n": 1})
    assert only(work_queue("durable").receive()).body == {"n": 1}


def test_visibility_timeout_expires_on_the_real_clock(work_queue: QueueFactory) -> None:
    queue = work_queue(visibility_timeout=0.05)
    queue.send({"n": 1})
    first = only(queue.receive())
    second = only(queue.receive(wait=5.0))
    assert (second.id, second.receive_count) == (first.id, 2)


def assert_exactly_once(sent: list[str], per_worker: list[list[str]]) -> None:
    counts = Counter(message_id for delivered in per_worker for message_id in delivered)
    assert [message_id for message_id, n in counts.items() if n > 1] == [], "delivered twice"
    assert set(counts) == set(sent), "lost or invented messages"


def test_eight_threads_receive_every_message_exactly_once(work_queue: QueueFactory) -> None:
    if not work_queue.exactly_once:
        pytest.skip(AT_LEAST_ONCE_ONLY)
    queue = work_queue("race", visibility_timeout=60.0)
    sent = [queue.send({"n": n}) for n in range(BATCH)]
    barrier = threading.Barrier(8)
    per_worker: list[list[str]] = []
    threads = [threading.Thread(target=lambda: per_worker.append(drain(queue, barrier.wait)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert_exactly_once(sent, per_worker)
    assert queue.depth() == {"visible": 0, "in_flight": 0, "dead": 0}


def test_four_processes_receive_every_message_exactly_once(work_queue: QueueFactory) -> None:
    if not work_queue.exactly_once:
        pytest.skip(AT_LEAST_ONCE_ONLY)
    queue = work_queue("race", visibility_timeout=60.0)
    sent = [queue.send({"n": n}) for n in range(BATCH)]
    per_worker = drain_in_processes(work_queue.recipe("race", visibility_timeout=60.0))
    assert_exactly_once(sent, per_worker)
    assert queue.depth() == {"visible": 0, "in_flight": 0, "dead": 0}


def test_local_queue_file_runs_in_wal_mode(tmp_path: Path) -> None:
    queue = SqliteWorkQueue(tmp_path / "queues.db", "work")
    queue.send({"n": 1})
    queue.close()
    connection = sqlite3.connect(tmp_path / "queues.db")
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        connection.close()


def test_local_sqlite_errors_surface_as_queue_error(tmp_path: Path) -> None:
    queue = SqliteWorkQueue(tmp_path, "work")
    with pytest.raises(QueueError, match="unable to open") as caught:
        queue.send({"n": 1})
    assert caught.value.code == "sqlite_cantopen"


def test_send_batch_queues_every_body_once_with_ids_in_order(work_queue: QueueFactory) -> None:
    queue = work_queue()
    ids = queue.send_batch([{"n": n} for n in range(23)])  # SQS takes at most 10 per call
    received: dict[str, int] = {}
    while messages := queue.receive(max_messages=10):
        for message in messages:
            received[message.id] = message.body["n"]
            queue.ack(message)
    assert len(ids) == len(set(ids)) == 23
    assert sorted(received.values()) == list(range(23))
    assert [received[i] for i in ids] == list(range(23))
    assert queue.send_batch([]) == []
