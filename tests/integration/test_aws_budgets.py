"""The DynamoDB budget ledger beyond the contract: its items stay out of the job indexes, it reads the
period's tenants without a Scan, and it tries a transaction again when another one was busy with the
same totals (moto never reports that conflict, so a client wrapper plays DynamoDB's part)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from handlers.adapters.aws import AwsClients, AwsNames, DynamoJobStore
from handlers.adapters.aws.budgets import CONFLICT_ATTEMPTS, DynamoBudgetLedger
from handlers.base.errors import NotFound, StorageError
from handlers.domain.budgets import Budget, Per, Usage, period_of
from handlers.domain.jobs import JobStatus
from tests.support.aws_calls import Calls

pytestmark = pytest.mark.integration

T0 = 1_796_300_000.0
DAY = period_of(T0, Per.DAY)
JOB_INDEX_ATTRIBUTES = {"due_shard", "kind", "status", "created_key", "check_at", "record"}


class Conflicting:
    """The DynamoDB client, but the first ``conflicts`` transactions are cancelled as DynamoDB cancels one
    that meets another transaction on the same item (the reason is on the item at ``busy``)."""

    def __init__(self, client: Any, conflicts: int, busy: int = 0) -> None:
        self._client, self.conflicts, self.busy = client, conflicts, busy
        self.transactions = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def transact_write_items(self, **request: Any) -> Any:
        self.transactions += 1
        if self.conflicts <= 0:
            return self._client.transact_write_items(**request)
        self.conflicts -= 1
        reasons = [{"Code": "None"} for _ in request["TransactItems"]]
        reasons[self.busy] = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
        raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
                           "CancellationReasons": reasons}, "TransactWriteItems")


@pytest.fixture
def ledger(clients: AwsClients, jobs: DynamoJobStore) -> DynamoBudgetLedger:
    """A ledger in the job table of the ``jobs`` fixture."""
    return DynamoBudgetLedger(clients.dynamodb, jobs.table)


def _fill(ledger: DynamoBudgetLedger) -> None:
    ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0)
    ledger.hold("acme", DAY, "job_b", 80.0, limit=100.0)  # refused
    ledger.hold("beta", DAY, "job_c", 5.0, limit=None)
    ledger.settle("acme", DAY, "job_a", 12.0)
    ledger.set_budget("acme", Budget(100.0, Per.DAY))


def test_ledger_items_are_never_jobs_and_carry_no_job_index_attribute(
        ledger: DynamoBudgetLedger, jobs: DynamoJobStore, clients: AwsClients) -> None:
    _fill(ledger)
    assert jobs.page() == ([], None)
    assert jobs.count(JobStatus.ACCEPTED, 10) == 0
    assert jobs.due(T0 + 1e9) == []
    for item_id in ("hold#job_a", f"budget#acme#{DAY}", f"budget-tenants#{DAY}", "budgetcfg"):
        with pytest.raises(NotFound):
            jobs.get(item_id)
    items = clients.dynamodb.scan(TableName=jobs.table)["Items"]  # the test's own look, not the ledger's
    assert len(items) == 6
    assert all(not JOB_INDEX_ATTRIBUTES & set(item) for item in items)
    assert all("expires_at" in item for item in items if item["id"]["S"] != "budgetcfg")


def test_usages_reads_the_period_list_and_the_totals_never_scanning(
        clients: AwsClients, jobs: DynamoJobStore) -> None:
    ledger = DynamoBudgetLedger(clients.dynamodb, jobs.table)
    _fill(ledger)
    calls = Calls(clients.dynamodb)
    assert ledger.usages(DAY) == [Usage("acme", DAY, held=0.0, spent=12.0, jobs=1),
                                  Usage("beta", DAY, held=5.0, jobs=1)]
    assert calls.names() == ["GetItem", "BatchGetItem"]


def test_usages_reads_more_tenants_than_one_batch_takes(ledger: DynamoBudgetLedger) -> None:
    tenants = [f"t{n:03d}" for n in range(105)]
    for tenant in tenants:
        ledger.hold(tenant, DAY, f"job_{tenant}", 1.0, limit=None)
    assert [usage.tenant for usage in ledger.usages(DAY)] == tenants


def test_the_tenant_list_is_written_once_per_tenant_and_period(clients: AwsClients, jobs: DynamoJobStore) -> None:
    ledger, calls = DynamoBudgetLedger(clients.dynamodb, jobs.table), Calls(clients.dynamodb)
    for n in range(3):
        ledger.hold("acme", DAY, f"job_{n}", 1.0, limit=None)
    assert calls.names().count("UpdateItem") == 1
    assert calls.names().count("TransactWriteItems") == 3


def test_a_hold_cancelled_by_a_busy_totals_item_is_tried_again(clients: AwsClients, jobs: DynamoJobStore) -> None:
    client, pauses = Conflicting(clients.dynamodb, conflicts=2), []
    ledger = DynamoBudgetLedger(client, jobs.table, sleep=pauses.append, jitter=lambda: 1.0)  # type: ignore[arg-type]
    assert ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=30.0, jobs=1)
    assert client.transactions == 3
    assert pauses == [0.02, 0.04]


def test_a_hold_whose_job_item_was_busy_is_tried_again_not_refused(clients: AwsClients, jobs: DynamoJobStore) -> None:
    """A conflict on the hold item (another submit of the same job) says nothing yet about the budget."""
    client = Conflicting(clients.dynamodb, conflicts=1, busy=1)
    ledger = DynamoBudgetLedger(client, jobs.table, sleep=lambda _: None)  # type: ignore[arg-type]
    assert ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=30.0, jobs=1)


def test_a_hold_that_stays_busy_fails_as_throttled_and_holds_nothing(clients: AwsClients, jobs: DynamoJobStore) -> None:
    client = Conflicting(clients.dynamodb, conflicts=CONFLICT_ATTEMPTS)
    ledger = DynamoBudgetLedger(client, jobs.table, sleep=lambda _: None)  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="kept the tenant's totals busy") as raised:
        ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0)
    assert (raised.value.code, raised.value.aws_code) == ("throttled", "TransactionConflict")
    assert ledger.usage("acme", DAY) == Usage("acme", DAY)


def test_a_settle_cancelled_by_a_busy_item_is_tried_again(clients: AwsClients, jobs: DynamoJobStore) -> None:
    client = Conflicting(clients.dynamodb, conflicts=0, busy=1)
    ledger = DynamoBudgetLedger(client, jobs.table, sleep=lambda _: None)  # type: ignore[arg-type]
    ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0)
    client.conflicts = 1
    ledger.settle("acme", DAY, "job_a", 25.0)
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, spent=25.0, jobs=1)


def test_a_missing_table_is_the_projects_storage_error(clients: AwsClients, names: AwsNames) -> None:
    ledger = DynamoBudgetLedger(clients.dynamodb, names.table)  # never created
    with pytest.raises(StorageError, match="list tenant 'acme' in day:2026-12-03") as raised:
        ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0)
    assert raised.value.code == "missing_resource"
    with pytest.raises(StorageError, match="read the usage of tenant 'acme'"):
        ledger.usage("acme", DAY)


def test_the_budgets_read_is_kept_for_config_ttl_and_a_change_through_the_ledger_applies_at_once(
        clients: AwsClients, jobs: DynamoJobStore) -> None:
    now = [1000.0]
    ledger = DynamoBudgetLedger(clients.dynamodb, jobs.table, clock=lambda: now[0], config_ttl=10.0)
    other = DynamoBudgetLedger(clients.dynamodb, jobs.table)
    calls = Calls(clients.dynamodb)
    assert ledger.budgets() == {} and ledger.budgets() == {}
    assert calls.names().count("GetItem") == 1
    other.set_budget("acme", Budget(50.0, Per.DAY))
    assert ledger.budgets() == {}  # set elsewhere: seen once the kept read is older than config_ttl
    now[0] += 10.0
    assert ledger.budgets() == {"acme": Budget(50.0, Per.DAY)}
    ledger.set_budget("acme", Budget(7.0, Per.MONTH))
    assert ledger.budgets() == {"acme": Budget(7.0, Per.MONTH)}
