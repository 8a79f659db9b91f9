"""What only the DynamoDB event log does: it rides on the ledger's writes (no extra call per publish),
reads with one ``Query`` per day and never a ``Scan``, expires by TTL, and never shows a claim that was
not published."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.adapters.aws import AwsClients, AwsNames, DynamoEventLedger, SnsEventBus
from handlers.adapters.aws.bootstrap import BootstrapResult, bootstrap, ensure_table
from handlers.adapters.aws.bus import LEDGER_PREFIX
from handlers.adapters.aws.eventlog import DynamoEventLog
from handlers.adapters.aws.jobs import EVENT_LOG_INDEX, TABLE_SPEC
from handlers.base.errors import QueueError
from tests.support.aws_calls import Calls
from tests.support.fakes import Clock

pytestmark = pytest.mark.integration

DAY = 86_400.0


def cloud_event(event_id: str) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "urn:seedance-relay",
            "type": "io.seedance-relay.job.completed", "subject": "job_a", "tenant": "acme",
            "data": {"job_id": "job_a"}}


@pytest.fixture
def resources(clients: AwsClients, names: AwsNames) -> BootstrapResult:
    return bootstrap(clients, names, {"everything": ["*"]})


def bus_on(clients: AwsClients, table: str, topic_arn: str, clock: Clock, retention: float = 30) -> SnsEventBus:
    ledger = DynamoEventLedger(clients.dynamodb, table, clock=clock.now, sleep=clock.sleep, ttl_days=retention)
    return SnsEventBus(clients.sns, clients.sqs, topic_arn, {}, ledger=ledger)


def test_publishing_logs_the_event_with_the_ledgers_two_writes_and_no_other_call(
        clients: AwsClients, names: AwsNames, resources: BootstrapResult) -> None:
    bus = bus_on(clients, names.table, resources.topic_arn, Clock())
    dynamodb, sns = Calls(clients.dynamodb), Calls(clients.sns)
    bus.publish(cloud_event("evt-1"))
    assert (dynamodb.names(), sns.names()) == (["PutItem", "UpdateItem"], ["Publish"])


def test_the_logged_item_expires_by_ttl_the_retention_after_publishing(
        clients: AwsClients, names: AwsNames, resources: BootstrapResult) -> None:
    clock = Clock()
    bus_on(clients, names.table, resources.topic_arn, clock, retention=7).publish(cloud_event("evt-1"))
    item = clients.dynamodb.get_item(TableName=names.table, Key={"id": {"S": LEDGER_PREFIX + "evt-1"}})["Item"]
    assert int(item["expires_at"]["N"]) == int(clock.now() + 7 * DAY)
    assert (item["log_day"]["S"], item["log_tenant"]["S"]) == ("2027-01-15", "acme")
    assert item["state"]["S"] == "published" and "lease_until" not in item


def test_a_page_is_one_query_of_the_index_per_day_of_its_range_and_never_a_scan(
        clients: AwsClients, names: AwsNames, resources: BootstrapResult) -> None:
    clock = Clock()
    bus_on(clients, names.table, resources.topic_arn, clock).publish(cloud_event("evt-1"))
    log = DynamoEventLog(clients.dynamodb, names.table, clock=clock.now)
    dynamodb = Calls(clients.dynamodb)
    page, _ = log.page(since=clock.now() - 2 * DAY)
    assert [entry.event["id"] for entry in page] == ["evt-1"]
    assert dynamodb.names() == ["Query"] * 3
    assert {params["IndexName"] for _, params in dynamodb.made} == {"event-log-index"}


def test_a_publish_that_failed_leaves_nothing_in_the_log(
        clients: AwsClients, names: AwsNames, resources: BootstrapResult) -> None:
    clock = Clock()
    broken = bus_on(clients, names.table, resources.topic_arn + "-gone", clock)
    with pytest.raises(QueueError):
        broken.publish(cloud_event("evt-1"))
    assert DynamoEventLog(clients.dynamodb, names.table, clock=clock.now).page() == ([], None)


def test_an_event_whose_publish_is_in_progress_is_not_in_the_log_until_recorded(
        clients: AwsClients, names: AwsNames, resources: BootstrapResult) -> None:
    clock = Clock()
    ledger = DynamoEventLedger(clients.dynamodb, names.table, clock=clock.now, sleep=clock.sleep)
    log = DynamoEventLog(clients.dynamodb, names.table, clock=clock.now)
    during: list[Any] = []
    ledger.once(cloud_event("evt-1"), lambda _: during.append(log.page()))
    assert during == [([], None)]
    assert [entry.event["id"] for entry in log.page()[0]] == ["evt-1"]


def test_bootstrap_adds_the_event_log_index_to_a_table_made_without_it(
        clients: AwsClients, names: AwsNames) -> None:
    """A table made by a version before the event log gets the index, and events logged meanwhile are read."""
    older = {key: value for key, value in TABLE_SPEC.items() if key != "TimeToLiveSpecification"}
    older["GlobalSecondaryIndexes"] = [i for i in TABLE_SPEC["GlobalSecondaryIndexes"]
                                       if i["IndexName"] != EVENT_LOG_INDEX]
    older["AttributeDefinitions"] = [a for a in TABLE_SPEC["AttributeDefinitions"]
                                     if a["AttributeName"] not in ("log_day", "log_key")]
    clients.dynamodb.create_table(TableName=names.table, **older)
    clock = Clock()
    ledger = DynamoEventLedger(clients.dynamodb, names.table, clock=clock.now, sleep=clock.sleep)
    ledger.once(cloud_event("evt-1"), lambda _: None)
    ensure_table(clients.dynamodb, names.table)
    ensure_table(clients.dynamodb, names.table)
    indexes = clients.dynamodb.describe_table(TableName=names.table)["Table"]["GlobalSecondaryIndexes"]
    log = DynamoEventLog(clients.dynamodb, names.table, clock=clock.now)
    wanted = sorted(i["IndexName"] for i in TABLE_SPEC["GlobalSecondaryIndexes"])
    assert sorted(i["IndexName"] for i in indexes) == wanted
    assert [entry.event["id"] for entry in log.page()[0]] == ["evt-1"]
