"""The job store as one DynamoDB table.

An item is the key ``id``, the whole job as JSON (``record``), ``version`` for the
conditional writes, and the attributes the three global secondary indexes read:

* ``due-index`` (``due_shard`` = ``"due"``, ``check_at``): sparse, the two attributes
  exist only while the job's ``check_at`` is set, so the reconciler's ``due`` is one
  ``Query`` over the jobs that still need work, oldest first (never a ``Scan``);
* ``created-index`` (``kind`` = ``"job"``, ``created_key``) and ``status-index``
  (``status``, ``created_key``): newest-first paging, all jobs or one status.
  ``created_key`` is ``created_at`` (fixed-width, so it sorts as text) then ``#`` and the
  id, which breaks ``created_at`` ties by id the way the local store does;
* ``tenant-index`` (``tenant``, ``created_key``): one tenant's jobs, newest first. A tenant's
  page of one status, and its counts, read this index with a filter on ``status``: they cost
  reads in proportion to the tenant's jobs passed over, not to the whole table (one index
  instead of a fifth, since CloudFormation adds a single index per stack update).
* ``event-log-index`` (``log_day``, ``log_key``): the event log, on the event ledger's items only
  (:mod:`handlers.adapters.aws.eventlog`); no job has these attributes.

``count`` is a ``Query`` of ``status-index`` with ``Select=COUNT``, paged no further than
its cap. A revoked dashboard session is an item keyed ``session#<id>`` with only
``expires_at`` (none of the index attributes, so no index and no page ever sees it); the
table's TTL removes it once the session would have expired anyway. Items without a
``record`` (these, and the event ledger's ``event#<id>``) are never answered as jobs.

A terminal job with nothing left to check gets ``expires_at`` (epoch seconds,
``ttl_days`` after it finished) for the table's TTL, which deletes it some time after that, for
free; :meth:`DynamoJobStore.purge_finished` deletes at once (the clean-up pass run by hand, or
what the TTL left behind). :data:`TABLE_SPEC` is the table's
definition in the shape both ``CreateTable`` and CloudFormation take.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from handlers.adapters.aws.batch import batch_get
from handlers.adapters.aws.errors import CONDITION_FAILED, aws_errors, error_code, translate
from handlers.base.errors import Conflict, InvalidRequest, NotFound, StorageError, Violation
from handlers.domain.jobs import TERMINAL, Job, JobStatus
from handlers.ports import Removed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = ["CREATED_INDEX", "DUE_INDEX", "DUE_SHARD", "EVENT_LOG_INDEX", "JOB_KIND", "SESSION_PREFIX", "STATUS_INDEX",
           "TABLE_SPEC", "TENANT_INDEX", "DynamoJobStore", "created_key", "job_item"]

DUE_INDEX, CREATED_INDEX, STATUS_INDEX, TENANT_INDEX = "due-index", "created-index", "status-index", "tenant-index"
EVENT_LOG_INDEX = "event-log-index"
DUE_SHARD, JOB_KIND = "due", "job"
SESSION_PREFIX = "session#"
TTL_ATTRIBUTE = "expires_at"
PURGE_PAGE = 100
DAY = 86_400.0


def _index(name: str, partition: str, sort: str) -> dict[str, Any]:
    return {"IndexName": name, "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": partition, "KeyType": "HASH"},
                          {"AttributeName": sort, "KeyType": "RANGE"}]}


TABLE_SPEC: Final[Mapping[str, Any]] = {
    "BillingMode": "PAY_PER_REQUEST",
    "AttributeDefinitions": [
        {"AttributeName": "id", "AttributeType": "S"},
        {"AttributeName": "due_shard", "AttributeType": "S"},
        {"AttributeName": "check_at", "AttributeType": "N"},
        {"AttributeName": "kind", "AttributeType": "S"},
        {"AttributeName": "status", "AttributeType": "S"},
        {"AttributeName": "created_key", "AttributeType": "S"},
        {"AttributeName": "tenant", "AttributeType": "S"},
        {"AttributeName": "log_day", "AttributeType": "S"},
        {"AttributeName": "log_key", "AttributeType": "S"},
    ],
    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
    "GlobalSecondaryIndexes": [
        _index(DUE_INDEX, "due_shard", "check_at"),
        _index(CREATED_INDEX, "kind", "created_key"),
        _index(STATUS_INDEX, "status", "created_key"),
        _index(TENANT_INDEX, "tenant", "created_key"),
        _index(EVENT_LOG_INDEX, "log_day", "log_key"),
    ],
    "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
}
"""The table's billing mode, keys, indexes and TTL (``CreateTable`` / ``AWS::DynamoDB::Table`` shape)."""


def _number(value: float) -> AttributeValueTypeDef:
    return {"N": repr(float(value))}


def created_key(created_at: float, job_id: str) -> str:
    """``created_at`` as fixed-width text, then the id: sorts like ``(created_at, id)``."""
    if created_at < 0:
        raise ValueError(f"created_at must not be negative, got {created_at}")
    return f"{created_at:020.6f}#{job_id}"


def job_item(job: Job, *, ttl_days: float, written_at: float) -> dict[str, AttributeValueTypeDef]:
    """The DynamoDB item for ``job``: the record plus the indexed, TTL and ``written_at`` attributes."""
    item: dict[str, AttributeValueTypeDef] = {
        "id": {"S": job.id}, "version": {"N": str(job.version)}, "kind": {"S": JOB_KIND},
        "written_at": _number(written_at),
        "status": {"S": job.status.value}, "created_key": {"S": created_key(job.created_at, job.id)},
        "tenant": {"S": job.tenant},
        "record": {"S": json.dumps(job.to_record(), separators=(",", ":"), ensure_ascii=False)},
    }
    if job.check_at is not None:
        item.update(due_shard={"S": DUE_SHARD}, check_at=_number(job.check_at))
    elif job.terminal:
        finished = job.finished_at if job.finished_at is not None else job.updated_at
        item[TTL_ATTRIBUTE] = {"N": str(int(finished + ttl_days * DAY))}
    return item


def _job(item: Mapping[str, Any]) -> Job:
    return Job.from_record(json.loads(item["record"]["S"]))


class DynamoJobStore:
    """:class:`~handlers.ports.JobStore` in the DynamoDB table ``table`` (see :data:`TABLE_SPEC`).

    ``clock`` stamps each item's ``written_at``; ``ttl_days`` is how long a finished job is kept.
    """

    def __init__(self, client: DynamoDBClient, table: str, *, clock: Callable[[], float] = time.time,
                 ttl_days: float = 90) -> None:
        self._client = client
        self.table = table
        self._clock = clock
        self.ttl_days = ttl_days

    def create(self, job: Job) -> Job:
        """``PutItem`` if no item has the id; the stored job either way."""
        try:
            with aws_errors(StorageError, f"create job {job.id!r}"):
                self._client.put_item(TableName=self.table, Item=self._item(job),
                                      ConditionExpression="attribute_not_exists(id)")
        except Conflict:
            return self.get(job.id)
        return job

    def get(self, job_id: str) -> Job:
        with aws_errors(StorageError, f"get job {job_id!r}"):
            item = self._client.get_item(TableName=self.table, Key={"id": {"S": job_id}},
                                         ConsistentRead=True).get("Item")
        if item is None or "record" not in item:
            raise NotFound(f"no job {job_id!r}")
        return _job(item)

    def existing(self, job_ids: Collection[str]) -> set[str]:
        """Consistent ``BatchGetItem`` calls of up to 100 keys, projected on the key: no record is read.

        Only items of ``kind`` job count: the other items the table keeps (sessions, the event
        ledger, keys, budgets, slots) are never jobs.

        Keys DynamoDB leaves unprocessed (throttling) are asked again, with a short backoff.
        """
        items = batch_get(self._client, self.table, list(job_ids), what="look up jobs",
                          projection={"#id": "id", "#kind": "kind"})
        return {item["id"]["S"] for item in items if item.get("kind", {}).get("S") == JOB_KIND}

    def update(self, job: Job) -> Job:
        """``PutItem`` conditional on ``version``; ``Conflict`` if it moved on, ``NotFound`` if absent."""
        written = replace(job, version=job.version + 1)
        try:
            self._client.put_item(
                TableName=self.table, Item=self._item(written),
                ConditionExpression="version = :expected",
                ExpressionAttributeValues={":expected": {"N": str(job.version)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise translate(exc, StorageError, f"update job {job.id!r}") from exc
            stored = exc.response.get("Item")
            raise _why_unchanged(job, stored if isinstance(stored, Mapping) else None) from exc
        except BotoCoreError as exc:
            raise translate(exc, StorageError, f"update job {job.id!r}") from exc
        return written

    def page(self, *, status: JobStatus | None = None, tenant: str | None = None, limit: int = 50,
             cursor: str | None = None) -> tuple[list[Job], str | None]:
        """Newest first through ``created-index``, ``status-index`` or ``tenant-index`` (with a filter on
        ``status`` when both are given); the cursor is the last job's position in that index."""
        limit = max(limit, 1)
        query = self._listing(status, tenant)
        if cursor is not None:
            partition = query["ExpressionAttributeNames"]["#p"]
            query["ExclusiveStartKey"] = {**_decode_cursor(cursor),
                                          partition: query["ExpressionAttributeValues"][":p"]}
        items = self._query({**query, "ScanIndexForward": False}, limit + 1, "page jobs")
        jobs = [_job(item) for item in items[:limit]]
        return jobs, (_encode_cursor(items[limit - 1]) if len(items) > limit else None)

    def count(self, status: JobStatus, cap: int, *, tenant: str | None = None) -> int:
        """``Query`` of ``status-index`` (or ``tenant-index``, filtered) with ``Select=COUNT``, paged, up to
        ``cap``."""
        query: dict[str, Any] = {**self._listing(status, tenant), "Select": "COUNT"}
        counted = 0
        while counted < cap:
            with aws_errors(StorageError, f"count {JobStatus(status).value} jobs"):
                answer = self._client.query(**query, Limit=cap - counted)
            counted += answer.get("Count", 0)
            if "LastEvaluatedKey" not in answer:
                break
            query = {**query, "ExclusiveStartKey": answer["LastEvaluatedKey"]}
        return max(0, min(counted, cap))

    def queued(self, limit: int = 100) -> list[Job]:
        """The ``queued`` jobs, oldest first: one ``Query`` of ``status-index``."""
        query = {**self._listing(JobStatus.QUEUED, None), "ScanIndexForward": True}
        return [_job(item) for item in self._query(query, max(limit, 1), "list queued jobs")]

    def _listing(self, status: JobStatus | None, tenant: str | None) -> dict[str, Any]:
        """The index query behind a listing: by tenant, by status, or every job."""
        if tenant is not None:
            index, partition = TENANT_INDEX, ("tenant", tenant)
        elif status is not None:
            index, partition = STATUS_INDEX, ("status", JobStatus(status).value)
        else:
            index, partition = CREATED_INDEX, ("kind", JOB_KIND)
        query: dict[str, Any] = {
            "TableName": self.table, "IndexName": index, "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": partition[0]},
            "ExpressionAttributeValues": {":p": {"S": partition[1]}},
        }
        if tenant is not None and status is not None:
            query["FilterExpression"] = "#s = :s"
            query["ExpressionAttributeNames"]["#s"] = "status"
            query["ExpressionAttributeValues"][":s"] = {"S": JobStatus(status).value}
        return query

    def revoke_session(self, session_id: str, until: float) -> None:
        """``PutItem`` of ``session#<id>`` with ``expires_at`` for the table's TTL."""
        item: dict[str, AttributeValueTypeDef] = {"id": {"S": SESSION_PREFIX + session_id},
                                                  TTL_ATTRIBUTE: {"N": str(int(until) + 1)}}
        with aws_errors(StorageError, "revoke a dashboard session"):
            self._client.put_item(TableName=self.table, Item=item)

    def session_revoked(self, session_id: str) -> bool:
        """One consistent ``GetItem``; a record past its ``expires_at`` (TTL deletes late) no longer counts."""
        with aws_errors(StorageError, "check a dashboard session"):
            item = self._client.get_item(TableName=self.table, Key={"id": {"S": SESSION_PREFIX + session_id}},
                                         ConsistentRead=True, ProjectionExpression=TTL_ATTRIBUTE).get("Item")
        return item is not None and float(item[TTL_ATTRIBUTE]["N"]) > self._clock()

    def due(self, now: float, limit: int = 100) -> list[Job]:
        """Jobs with ``check_at <= now``, oldest first: one ``Query`` of the sparse ``due-index``."""
        query: dict[str, Any] = {
            "TableName": self.table, "IndexName": DUE_INDEX, "ScanIndexForward": True,
            "KeyConditionExpression": "due_shard = :due AND check_at <= :now",
            "ExpressionAttributeValues": {":due": {"S": DUE_SHARD}, ":now": _number(now)},
        }
        return [_job(item) for item in self._query(query, max(limit, 1), "list due jobs")]

    def purge_finished(self, before: float, *, limit: int = 1000, dry_run: bool = False) -> Removed:
        """Per final status, ``Query`` ``status-index`` over the jobs created before ``before`` (a job finishes
        after it was created), oldest first; delete those finished before ``before``, each on the condition
        that its version is unchanged. Reads cost what the TTL has not yet removed, not the table."""
        removed = Removed()
        for status in sorted(TERMINAL):
            for item in self._created_before(status, before):
                if removed.count >= limit:
                    return removed
                if _finished_before(item, before) and (dry_run or self._delete_unchanged(item)):
                    removed = Removed(removed.count + 1, removed.bytes + len(item["record"]["S"].encode()))
        return removed

    def compact(self) -> int:
        """DynamoDB gives deleted items' space back itself."""
        return 0

    def _created_before(self, status: JobStatus, before: float) -> Iterator[dict[str, Any]]:
        query: dict[str, Any] = {
            "TableName": self.table, "IndexName": STATUS_INDEX, "ScanIndexForward": True,
            "KeyConditionExpression": "#s = :s AND created_key < :c", "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": status.value}, ":c": {"S": created_key(max(before, 0), "")}},
        }
        while True:
            with aws_errors(StorageError, f"list finished {status.value} jobs"):
                answer = self._client.query(**query, Limit=PURGE_PAGE)
            yield from answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                return
            query = {**query, "ExclusiveStartKey": answer["LastEvaluatedKey"]}

    def _delete_unchanged(self, item: Mapping[str, Any]) -> bool:
        """``DeleteItem`` unless the job was written since it was read; whether it was deleted."""
        try:
            with aws_errors(StorageError, f"delete job {item['id']['S']!r}"):
                self._client.delete_item(TableName=self.table, Key={"id": item["id"]},
                                         ConditionExpression="version = :v",
                                         ExpressionAttributeValues={":v": item["version"]})
        except Conflict:
            return False
        return True

    def _item(self, job: Job) -> dict[str, AttributeValueTypeDef]:
        return job_item(job, ttl_days=self.ttl_days, written_at=self._clock())

    def _query(self, query: dict[str, Any], wanted: int, what: str) -> list[dict[str, Any]]:
        """Up to ``wanted`` items, following ``LastEvaluatedKey`` across DynamoDB's 1 MB pages."""
        items: list[dict[str, Any]] = []
        while len(items) < wanted:
            with aws_errors(StorageError, what):
                answer = self._client.query(**query, Limit=wanted - len(items))
            items += answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                break
            query = {**query, "ExclusiveStartKey": answer["LastEvaluatedKey"]}
        return items

def _finished_before(item: Mapping[str, Any], before: float) -> bool:
    """Whether the job of ``item`` is final with nothing left to check, and finished before ``before``."""
    job = _job(item)
    finished = job.finished_at if job.finished_at is not None else job.updated_at
    return job.terminal and job.check_at is None and finished < before


def _why_unchanged(job: Job, stored: Mapping[str, Any] | None) -> NotFound | Conflict:
    if not stored:
        return NotFound(f"no job {job.id!r}")
    return Conflict(f"job {job.id!r} is at version {stored['version']['N']}, not {job.version}")


_INVALID_CURSOR = Violation("cursor", "invalid_cursor", "not a cursor this store gave out")


def _encode_cursor(item: Mapping[str, Any]) -> str:
    position = {"id": item["id"]["S"], "created_key": item["created_key"]["S"]}
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, AttributeValueTypeDef]:
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest([_INVALID_CURSOR]) from exc
    if (not isinstance(position, dict) or set(position) != {"id", "created_key"}
            or not all(isinstance(value, str) and value for value in position.values())):
        raise InvalidRequest([_INVALID_CURSOR])
    return {"id": {"S": position["id"]}, "created_key": {"S": position["created_key"]}}
