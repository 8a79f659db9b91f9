"""What only the SNS event bus does: filter policies with raw delivery to subscriber queues, and the
publish-once ledger's claims and leases in DynamoDB.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers.adapters.aws import (
    AwsClients,
    AwsNames,
    DynamoEventLedger,
    DynamoJobStore,
    SnsEventBus,
    build_aws_adapters,
)
from handlers.adapters.aws.bootstrap import bootstrap
from handlers.adapters.aws.bus import LEDGER_PREFIX
from handlers.base.errors import QueueError

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0
COMPLETED = "ai.seedance-relay.job.completed"
FAILED = "ai.seedance-relay.job.failed"


def cloud_event(event_id: str, event_type: str = COMPLETED) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "seedance-relay", "type": event_type,
            "subject": "job_a", "data": {"job_id": "job_a"}}


def raw_messages(clients: AwsClients, url: str) -> list[dict[str, Any]]:
    return clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       MessageAttributeNames=["All"]).get("Messages", [])  # type: ignore[return-value]


@pytest.fixture
def wired(clients: AwsClients, names: AwsNames) -> dict[str, Any]:
    result = bootstrap(clients, names, {"done": [COMPLETED], "everything": ["*"]})
    return {"result": result, "bus": build_aws_adapters(clients, names, {"done": [COMPLETED], "everything": ["*"]})[3]}


def test_fan_out_follows_the_filter_policies_with_raw_delivery(wired: dict[str, Any], clients: AwsClients) -> None:
    completed, failed = cloud_event("evt-1"), cloud_event("evt-2", FAILED)
    wired["bus"].publish(completed)
    wired["bus"].publish(failed)
    queues = wired["result"].subscriber_queues
    (done,) = raw_messages(clients, queues["done"].url)
    assert json.loads(done["Body"]) == completed
    assert done["MessageAttributes"]["type"]["StringValue"] == COMPLETED
    everything = raw_messages(clients, queues["everything"].url)
    assert sorted(json.loads(m["Body"])["id"] for m in everything) == ["evt-1", "evt-2"]


def test_a_publish_that_fails_releases_its_claim(wired: dict[str, Any], clients: AwsClients, names: AwsNames) -> None:
    ledger = DynamoEventLedger(clients.dynamodb, names.table)
    broken = SnsEventBus(clients.sns, clients.sqs, wired["result"].topic_arn + "-gone", {}, ledger=ledger)
    with pytest.raises(QueueError):
        broken.publish(cloud_event("evt-1"))
    wired["bus"].publish(cloud_event("evt-1"))
    assert len(raw_messages(clients, wired["result"].subscriber_queues["everything"].url)) == 1


def test_a_claim_whose_lease_ran_out_is_taken_over(wired: dict[str, Any], clients: AwsClients, names: AwsNames) -> None:
    clients.dynamodb.put_item(TableName=names.table, Item={
        "id": {"S": LEDGER_PREFIX + "evt-1"}, "state": {"S": "publishing"}, "lease_until": {"N": "1"}})
    wired["bus"].publish(cloud_event("evt-1"))
    assert len(raw_messages(clients, wired["result"].subscriber_queues["everything"].url)) == 1
    item = clients.dynamodb.get_item(TableName=names.table, Key={"id": {"S": LEDGER_PREFIX + "evt-1"}})["Item"]
    assert item["state"]["S"] == "published"


class LedgerClock:
    """Time for the ledger that moves only when it sleeps; ``on_sleep`` runs at each sleep."""

    def __init__(self, on_sleep: Any = None) -> None:
        self.now, self.sleeps, self.on_sleep = T0, 0, on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        if self.on_sleep is not None:
            self.on_sleep()


def claim_elsewhere(clients: AwsClients, table: str, event_id: str, state: str = "publishing") -> None:
    clients.dynamodb.put_item(TableName=table, Item={
        "id": {"S": LEDGER_PREFIX + event_id}, "state": {"S": state}, "lease_until": {"N": str(T0 + 1000)}})


def test_a_publisher_waits_for_a_racing_claim_to_finish_and_does_not_publish_again(
        jobs: DynamoJobStore, clients: AwsClients) -> None:
    claim_elsewhere(clients, jobs.table, "evt-1")
    clock = LedgerClock(on_sleep=lambda: claim_elsewhere(clients, jobs.table, "evt-1", "published"))
    ledger = DynamoEventLedger(clients.dynamodb, jobs.table, clock=clock, sleep=clock.sleep)
    published: list[str] = []
    ledger.once(cloud_event("evt-1"), lambda _: published.append("evt-1"))
    assert (published, clock.sleeps) == ([], 1)


def test_a_publisher_gives_up_on_a_claim_that_outlives_its_lease(jobs: DynamoJobStore, clients: AwsClients) -> None:
    claim_elsewhere(clients, jobs.table, "evt-1")
    clock = LedgerClock()
    ledger = DynamoEventLedger(clients.dynamodb, jobs.table, clock=clock, sleep=clock.sleep, lease_seconds=30,
                               poll_interval=5)
    published: list[str] = []
    with pytest.raises(QueueError, match="evt-1") as caught:
        ledger.once(cloud_event("evt-1"), lambda _: published.append("evt-1"))
    assert (caught.value.code, published) == ("publish_in_progress", [])


def test_without_a_ledger_sns_delivers_every_publish(wired: dict[str, Any], clients: AwsClients) -> None:
    bus = SnsEventBus(clients.sns, clients.sqs, wired["result"].topic_arn, {})
    bus.publish(cloud_event("evt-1"))
    bus.publish(cloud_event("evt-1"))
    assert len(raw_messages(clients, wired["result"].subscriber_queues["everything"].url)) == 2
