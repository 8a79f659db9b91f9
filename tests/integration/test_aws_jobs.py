"""What only the DynamoDB job store does, against moto in server mode: batched lookups, the sparse due
index, the status index, TTL and its cursors.

Calls are observed through botocore's own event hooks, never patched.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from typing import Any

import pytest

from handlers.adapters.aws import AwsClients, DynamoJobStore
from handlers.adapters.aws.errors import aws_code
from handlers.adapters.aws.jobs import DUE_INDEX, STATUS_INDEX, TABLE_SPEC
from handlers.base.errors import InvalidRequest, NotFound, StorageError
from handlers.domain.jobs import Job, JobStatus
from tests.support.aws_calls import Calls

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0
FAILED = "ai.seedance-relay.job.failed"


def make_job(job_id: str, *, check_at: float | None = None, status: JobStatus = JobStatus.ACCEPTED,
             finished_at: float | None = None) -> Job:
    return Job(id=job_id, request={"prompt": job_id}, fingerprint="f" * 64, created_at=T0, updated_at=T0,
               status=status, check_at=check_at, finished_at=finished_at)


def index_ids(clients: AwsClients, table: str, index: str) -> list[str]:
    """What a GSI holds (a Scan of the index, by the test, to look inside it)."""
    items = clients.dynamodb.scan(TableName=table, IndexName=index)["Items"]
    return sorted(item["id"]["S"] for item in items)


def test_existing_asks_again_for_the_keys_dynamodb_left_unprocessed(jobs: DynamoJobStore, clients: AwsClients) -> None:
    for n in range(3):
        jobs.create(make_job(f"job_{n}"))
    asked = ["job_0", "job_2", "job_9"]
    answers = 0

    def throttle_first_answer(parsed: dict[str, Any], **_: Any) -> None:
        nonlocal answers
        answers += 1
        if answers == 1:  # DynamoDB may answer none of a batch and hand the keys back
            parsed["Responses"] = {jobs.table: []}
            parsed["UnprocessedKeys"] = {jobs.table: {"Keys": [{"id": {"S": job_id}} for job_id in asked],
                                                      "ConsistentRead": True, "ProjectionExpression": "#id, #kind",
                                                      "ExpressionAttributeNames": {"#id": "id", "#kind": "kind"}}}

    clients.dynamodb.meta.events.register("after-call.dynamodb.BatchGetItem", throttle_first_answer)
    try:
        assert jobs.existing(asked) == {"job_0", "job_2"}
    finally:
        clients.dynamodb.meta.events.unregister("after-call.dynamodb.BatchGetItem", throttle_first_answer)
    assert answers == 2


def test_due_is_one_query_of_the_sparse_due_index(jobs: DynamoJobStore, clients: AwsClients) -> None:
    jobs.create(make_job("job_due", check_at=T0))
    waiting = jobs.create(make_job("job_later", check_at=T0 + 100))
    jobs.create(make_job("job_done"))
    assert index_ids(clients, jobs.table, DUE_INDEX) == ["job_due", "job_later"]
    calls = Calls(clients.dynamodb)
    assert [job.id for job in jobs.due(T0 + 1)] == ["job_due"]
    assert [(name, params["IndexName"]) for name, params in calls.made] == [("Query", DUE_INDEX)]
    jobs.update(replace(waiting, updated_at=T0 + 2, check_at=None))
    assert index_ids(clients, jobs.table, DUE_INDEX) == ["job_due"]


def test_a_status_filter_reads_the_status_index(jobs: DynamoJobStore, clients: AwsClients) -> None:
    jobs.create(make_job("job_a", status=JobStatus.FAILED))
    calls = Calls(clients.dynamodb)
    assert [job.id for job in jobs.page(status=JobStatus.FAILED)[0]] == ["job_a"]
    assert [(name, params["IndexName"]) for name, params in calls.made] == [("Query", STATUS_INDEX)]


def test_finished_jobs_expire_by_ttl(jobs: DynamoJobStore, clients: AwsClients) -> None:
    jobs.create(make_job("job_open"))
    jobs.create(make_job("job_finished", status=JobStatus.PUBLISHED, finished_at=T0 + 60))
    jobs.create(make_job("job_finishing", status=JobStatus.STORED, check_at=T0))
    ttl = clients.dynamodb.describe_time_to_live(TableName=jobs.table)["TimeToLiveDescription"]
    assert (ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")) == ("ENABLED", "expires_at")

    def expiry(job_id: str) -> str | None:
        item = clients.dynamodb.get_item(TableName=jobs.table, Key={"id": {"S": job_id}})["Item"]
        return item.get("expires_at", {}).get("N")

    assert expiry("job_finished") == str(int(T0 + 60 + 90 * 86_400))
    assert expiry("job_open") is None
    assert expiry("job_finishing") is None


@pytest.mark.parametrize("position", [{"id": 1, "created_key": "x"}, {"id": "job_a"}, ["job_a", 1.0]])
def test_a_cursor_of_another_shape_is_refused(jobs: DynamoJobStore, position: Any) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(position).encode()).decode()
    with pytest.raises(InvalidRequest) as caught:
        jobs.page(cursor=cursor)
    assert [violation.field for violation in caught.value.violations] == ["cursor"]


def test_a_missing_table_is_a_storage_error_not_a_missing_job(clients: AwsClients) -> None:
    store = DynamoJobStore(clients.dynamodb, f"missing-{uuid.uuid4().hex[:12]}")
    with pytest.raises(StorageError) as caught:
        store.get("job_a")
    assert not isinstance(caught.value, NotFound)
    assert (caught.value.code, aws_code(caught.value)) == ("missing_resource", "ResourceNotFoundException")


def test_table_spec_is_the_table_bootstrap_creates(jobs: DynamoJobStore, clients: AwsClients) -> None:
    table = clients.dynamodb.describe_table(TableName=jobs.table)["Table"]
    created = {index["IndexName"]: index["KeySchema"] for index in table.get("GlobalSecondaryIndexes", [])}
    assert created == {index["IndexName"]: index["KeySchema"] for index in TABLE_SPEC["GlobalSecondaryIndexes"]}
    assert table["KeySchema"] == TABLE_SPEC["KeySchema"]
