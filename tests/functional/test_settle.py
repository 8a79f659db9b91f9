"""Settling a received message is one decision (``handlers.ports.settle``), the same for the local worker
and for a Lambda batch (``BatchSettler``): done acks, a retry waits ``delay`` seconds, and no delay means
visible again at once on both paths. On the local queue, with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.adapters.aws.sqs_batch import BatchSettler
from handlers.adapters.local import SqliteWorkQueue
from handlers.ports import Message, Settles, WorkQueue, settle
from tests.support.fakes import Clock

VISIBILITY = 30.0


@pytest.fixture
def queue(tmp_path: Path, clock: Clock) -> Iterator[SqliteWorkQueue]:
    queue = SqliteWorkQueue(tmp_path / "queue.db", "ingest", visibility_timeout=VISIBILITY, clock=clock.now,
                            sleep=clock.sleep)
    yield queue
    queue.close()


PATHS = {"local worker": lambda queue: queue, "lambda batch": BatchSettler}


@pytest.fixture(params=sorted(PATHS))
def settler(request: pytest.FixtureRequest, queue: WorkQueue) -> Settles:
    """How a received message is settled on each path: the queue itself, or a Lambda batch of it."""
    return PATHS[request.param](queue)  # type: ignore[no-any-return]


def received(queue: WorkQueue) -> Message:
    queue.send({"job_id": "job_a"})
    (message,) = queue.receive()
    return message


@pytest.mark.parametrize("delay", [0.0, -1.0])
def test_a_retry_with_no_delay_is_visible_again_at_once(settler: Settles, queue: WorkQueue, delay: float) -> None:
    message = received(queue)
    assert settle(settler, message, done=False, delay=delay) is False
    (again,) = queue.receive()
    assert (again.id, again.receive_count) == (message.id, 2)


def test_a_retry_waits_out_its_delay(settler: Settles, queue: WorkQueue, clock: Clock) -> None:
    message = received(queue)
    settle(settler, message, done=False, delay=5.0)
    clock.advance(4.9)
    assert queue.receive() == []
    clock.advance(0.1)
    assert [m.id for m in queue.receive()] == [message.id]


def test_the_local_worker_acks_a_done_message(queue: WorkQueue) -> None:
    assert settle(queue, received(queue), done=True) is True
    assert queue.depth() == {"visible": 0, "in_flight": 0, "dead": 0}


def test_a_lambda_batch_leaves_a_done_message_to_the_event_source_mapping(queue: WorkQueue) -> None:
    """The record is reported a success and the mapping deletes it: no call of our own touches the queue."""
    assert settle(BatchSettler(queue), received(queue), done=True) is True
    assert queue.depth() == {"visible": 0, "in_flight": 1, "dead": 0}
