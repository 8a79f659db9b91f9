"""What only the DynamoDB slot pool does, against moto in server mode: one item beside the jobs that no
index sees, one request per acquire, and AWS errors as the project's.

Calls are observed through botocore's own event hook, never patched.
"""

from __future__ import annotations

import uuid

import pytest

from handlers.adapters.aws import AwsClients, DynamoJobStore, DynamoSlotPool
from handlers.adapters.aws.errors import aws_code
from handlers.adapters.aws.jobs import TABLE_SPEC
from handlers.adapters.aws.slots import POOL_ID
from handlers.base.errors import StorageError
from tests.support.aws_calls import Calls

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0


@pytest.fixture
def pool(jobs: DynamoJobStore, clients: AwsClients) -> DynamoSlotPool:
    """A slot pool in the job table, with its item made by a first acquire and release."""
    made = DynamoSlotPool(clients.dynamodb, jobs.table)
    assert made.acquire("job_setup", "acme", now=T0, until=T0 + 60, cap=1, tenant_cap=None)
    made.release("job_setup")
    return made


def test_the_pool_item_carries_no_record_and_none_of_the_index_attributes(pool: DynamoSlotPool,
                                                                         clients: AwsClients) -> None:
    assert pool.acquire("job_1", "acme", now=T0, until=T0 + 60, cap=5, tenant_cap=2)
    item = clients.dynamodb.get_item(TableName=pool.table, Key={"id": {"S": POOL_ID}}, ConsistentRead=True)["Item"]
    indexed = {attribute["AttributeName"] for attribute in TABLE_SPEC["AttributeDefinitions"]} - {"id"}
    assert set(item) == {"id", "leases", "lapsed", "tenants"}
    assert not set(item) & (indexed | {"record", "expires_at"})


def test_an_acquire_under_the_cap_is_one_update_item(pool: DynamoSlotPool, clients: AwsClients) -> None:
    calls = Calls(clients.dynamodb)
    assert pool.acquire("job_1", "acme", now=T0, until=T0 + 60, cap=5, tenant_cap=2)
    assert calls.names() == ["UpdateItem"]


def test_an_acquire_refused_at_the_cap_is_one_update_item(pool: DynamoSlotPool, clients: AwsClients) -> None:
    assert pool.acquire("job_1", "acme", now=T0, until=T0 + 60, cap=1, tenant_cap=None)
    calls = Calls(clients.dynamodb)
    assert not pool.acquire("job_2", "acme", now=T0, until=T0 + 60, cap=1, tenant_cap=None)
    assert calls.names() == ["UpdateItem"]


def test_the_first_acquire_on_a_new_table_creates_the_pool_item(jobs: DynamoJobStore, clients: AwsClients) -> None:
    fresh = DynamoSlotPool(clients.dynamodb, jobs.table)
    calls = Calls(clients.dynamodb)
    assert fresh.acquire("job_1", "acme", now=T0, until=T0 + 60, cap=1, tenant_cap=1)
    assert calls.names() == ["UpdateItem", "UpdateItem", "UpdateItem"]
    assert [lease.job_id for lease in fresh.leases(T0)] == ["job_1"]


def test_a_pool_that_was_never_used_has_no_leases_and_releases_nothing(jobs: DynamoJobStore,
                                                                       clients: AwsClients) -> None:
    fresh = DynamoSlotPool(clients.dynamodb, jobs.table)
    fresh.release("job_1")
    assert (fresh.leases(T0), fresh.expired(T0), fresh.renew("job_1", now=T0, until=T0 + 1)) == ([], [], False)


@pytest.mark.parametrize("call", ["acquire", "leases", "release"])
def test_a_missing_table_is_a_storage_error_naming_the_slot_pool(clients: AwsClients, call: str) -> None:
    missing = DynamoSlotPool(clients.dynamodb, f"missing-{uuid.uuid4().hex[:12]}")
    actions = {"acquire": lambda: missing.acquire("job_1", "acme", now=T0, until=T0 + 60, cap=1, tenant_cap=None),
               "leases": lambda: missing.leases(T0), "release": lambda: missing.release("job_1")}
    with pytest.raises(StorageError, match=r"^slot pool: ") as caught:
        actions[call]()
    assert (caught.value.code, aws_code(caught.value)) == ("missing_resource", "ResourceNotFoundException")
