"""What only the SQS work queue does, on SQS's own clock (real seconds: visibility timeouts of 1 s):
redelivery, dead letters, redrive, and draining races across threads and processes.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid

import pytest

from handlers.adapters.aws import AwsClients, AwsNames, SqsWorkQueue, aws_clients
from handlers.adapters.aws.bootstrap import ensure_queue
from handlers.adapters.aws.errors import aws_code
from handlers.adapters.aws.sqs_batch import BatchSettler
from handlers.base.errors import NotFound
from handlers.ports import Message, settle
from tests.support.queues import drain, drain_in_processes

pytestmark = pytest.mark.integration


@pytest.fixture
def sqs_queue(clients: AwsClients, names: AwsNames) -> SqsWorkQueue:
    """A queue whose messages come back after 1 s and go to the DLQ after their second receive."""
    ensure_queue(clients.sqs, names.ingest_queue, max_receives=2, visibility_timeout=1)
    return SqsWorkQueue.from_name(clients.sqs, names.ingest_queue)


def only(messages: list[Message]) -> Message:
    assert len(messages) == 1, messages
    return messages[0]


def test_an_unacked_message_comes_back_after_the_visibility_timeout(sqs_queue: SqsWorkQueue) -> None:
    message_id = sqs_queue.send({"n": 1})
    first = only(sqs_queue.receive())
    assert sqs_queue.receive() == []
    second = only(sqs_queue.receive(wait=3))
    assert (second.id, second.receive_count) == (message_id, 2)
    assert second.receipt != first.receipt


def test_a_message_received_max_receives_times_moves_to_the_dlq(sqs_queue: SqsWorkQueue) -> None:
    message_id = sqs_queue.send({"poison": True})
    assert only(sqs_queue.receive()).receive_count == 1
    assert only(sqs_queue.receive(wait=3)).receive_count == 2
    time.sleep(1.2)
    assert sqs_queue.receive() == []
    dead = only(sqs_queue.dead_letters())
    assert (dead.id, dict(dead.body), dead.receive_count, dead.receipt) == (message_id, {"poison": True}, 2, "")
    assert sqs_queue.depth() == {"visible": 0, "in_flight": 0, "dead": 1}


def test_retry_later_hides_the_message_for_the_delay(sqs_queue: SqsWorkQueue) -> None:
    sqs_queue.send({"n": 1})
    sqs_queue.retry_later(only(sqs_queue.receive()), 1.0)
    assert sqs_queue.receive() == []
    assert only(sqs_queue.receive(wait=3)).receive_count == 2


def test_a_lambda_record_retried_with_no_delay_is_visible_again_at_once(sqs_queue: SqsWorkQueue) -> None:
    """The ingest Lambda settles as the local worker does: a zero delay is ``ChangeMessageVisibility`` 0,
    not a wait for the queue's visibility timeout."""
    sqs_queue.send({"n": 1})
    message = only(sqs_queue.receive())
    assert settle(BatchSettler(sqs_queue), message, done=False, delay=0.0) is False
    assert only(sqs_queue.receive()).id == message.id


def test_a_delayed_send_is_in_flight_until_its_delay_in_whole_seconds(sqs_queue: SqsWorkQueue) -> None:
    sqs_queue.send({"n": 1}, delay=1.5)
    assert sqs_queue.receive() == []
    assert sqs_queue.depth() == {"visible": 0, "in_flight": 1, "dead": 0}
    assert only(sqs_queue.receive(wait=3)).body == {"n": 1}


def put_in_dlq(clients: AwsClients, queue: SqsWorkQueue, count: int) -> list[str]:
    assert queue.dlq_url is not None
    return [clients.sqs.send_message(QueueUrl=queue.dlq_url, MessageBody=json.dumps({"n": n}),
                                     MessageAttributes={"type": {"DataType": "String", "StringValue": f"t{n}"}})
            ["MessageId"] for n in range(count)]


def test_dead_letters_peeks_without_taking(sqs_queue: SqsWorkQueue, clients: AwsClients) -> None:
    sent = put_in_dlq(clients, sqs_queue, 3)
    assert sorted(m.id for m in sqs_queue.dead_letters()) == sorted(sent)
    assert sorted(m.id for m in sqs_queue.dead_letters()) == sorted(sent)
    assert len(sqs_queue.dead_letters(limit=2)) == 2
    assert sqs_queue.depth()["dead"] == 3


def test_redrive_moves_every_dead_letter_back_as_a_fresh_message(sqs_queue: SqsWorkQueue, clients: AwsClients) -> None:
    put_in_dlq(clients, sqs_queue, 12)
    assert sqs_queue.redrive() == 12
    assert sqs_queue.dead_letters() == []
    first = sqs_queue.receive(max_messages=50)
    received = first + sqs_queue.receive(max_messages=50)
    assert len(first) <= 10
    assert sorted(m.body["n"] for m in received) == list(range(12))
    assert {m.receive_count for m in received} == {1}


def test_redrive_keeps_the_message_attributes(sqs_queue: SqsWorkQueue, clients: AwsClients) -> None:
    put_in_dlq(clients, sqs_queue, 1)
    sqs_queue.redrive()
    (raw,) = clients.sqs.receive_message(QueueUrl=sqs_queue.queue_url, MessageAttributeNames=["All"])["Messages"]
    assert raw["MessageAttributes"]["type"]["StringValue"] == "t0"


def sqs_work_queue(endpoint: str, url: str, dlq_url: str | None) -> SqsWorkQueue:
    """A recipe for the same queue in another process (boto3 clients do not pickle)."""
    return SqsWorkQueue(aws_clients(AwsNames(), endpoint_url=endpoint).sqs, url, dlq_url=dlq_url)


def assert_none_lost(sent: list[str], per_worker: list[list[str]]) -> None:
    """At least once: every message sent was delivered, and nothing else was (SQS may repeat one)."""
    assert set(sent) == {message_id for delivered in per_worker for message_id in delivered}


@pytest.fixture
def race_queue(clients: AwsClients, names: AwsNames) -> SqsWorkQueue:
    ensure_queue(clients.sqs, names.ingest_queue, max_receives=5, visibility_timeout=60)
    return SqsWorkQueue.from_name(clients.sqs, names.ingest_queue)


def test_eight_threads_draining_one_queue_lose_nothing(race_queue: SqsWorkQueue) -> None:
    sent = [race_queue.send({"n": n}) for n in range(200)]
    barrier = threading.Barrier(8)
    per_worker: list[list[str]] = []
    threads = [threading.Thread(target=lambda: per_worker.append(drain(race_queue, barrier.wait)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert_none_lost(sent, per_worker)
    assert race_queue.depth() == {"visible": 0, "in_flight": 0, "dead": 0}


def test_four_processes_draining_one_queue_lose_nothing(race_queue: SqsWorkQueue, moto_server: str) -> None:
    sent = [race_queue.send({"n": n}) for n in range(100)]
    recipe = functools.partial(sqs_work_queue, moto_server, race_queue.queue_url, race_queue.dlq_url)
    per_worker = drain_in_processes(recipe)
    assert_none_lost(sent, per_worker)
    assert race_queue.depth() == {"visible": 0, "in_flight": 0, "dead": 0}


def test_from_name_finds_the_dlq_by_name_or_through_the_redrive_policy(
        clients: AwsClients, names: AwsNames) -> None:
    pair = ensure_queue(clients.sqs, names.ingest_queue, max_receives=3, visibility_timeout=30)
    by_name = SqsWorkQueue.from_name(clients.sqs, names.ingest_queue)
    by_url = SqsWorkQueue.from_name(clients.sqs, pair.url)
    assert (by_name.queue_url, by_name.dlq_url) == (by_url.queue_url, by_url.dlq_url) == (pair.url, pair.dlq_url)


def test_a_missing_queue_is_not_found(clients: AwsClients) -> None:
    with pytest.raises(NotFound) as caught:
        SqsWorkQueue.from_name(clients.sqs, f"missing-{uuid.uuid4().hex[:12]}")
    assert caught.value.code == "missing_resource"
    assert aws_code(caught.value) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def test_a_body_that_is_not_a_json_object_arrives_raw(sqs_queue: SqsWorkQueue, clients: AwsClients) -> None:
    clients.sqs.send_message(QueueUrl=sqs_queue.queue_url, MessageBody="not json")
    assert only(sqs_queue.receive()).body == {"raw": "not json"}
