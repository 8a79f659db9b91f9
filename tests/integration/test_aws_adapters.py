"""What only the AWS adapters do, against moto in server mode over HTTP.

The contract suites (tests/contract) already run every port against moto; this file pins
what they cannot: multipart uploads, conditional writes and encryption in S3, the sparse
due index and TTL in DynamoDB, SNS filter policies and raw delivery, SQS's own clock
(real seconds here: visibility timeouts of 1 s), and the translation of botocore errors.
Calls are observed through botocore's own event hooks, never patched.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import random
import threading
import time
import tracemalloc
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from handlers.adapters.aws import (
    AwsClients,
    AwsNames,
    DynamoEventLedger,
    DynamoJobStore,
    S3BlobStore,
    SnsEventBus,
    SqsWorkQueue,
    aws_clients,
    build_aws_adapters,
)
from handlers.adapters.aws.blobs import MIB, MIN_PART_SIZE, SIDECAR_SUFFIX
from handlers.adapters.aws.bootstrap import bootstrap, ensure_bucket, ensure_queue, ensure_table
from handlers.adapters.aws.bus import LEDGER_PREFIX
from handlers.adapters.aws.jobs import DUE_INDEX, STATUS_INDEX, TABLE_SPEC
from handlers.errors import InvalidRequest, NotFound, QueueError, StorageError
from handlers.jobs import Job, JobStatus
from handlers.ports import Message
from handlers.server import free_port
from tests.support.logs import rendered_logs
from tests.support.queues import drain, drain_in_processes

pytestmark = pytest.mark.integration

KEY = "jobs/job_x/output-0.mp4"
T0 = 1_700_000_000.0
COMPLETED = "ai.seedance-relay.job.completed"
FAILED = "ai.seedance-relay.job.failed"


class Calls:
    """The operations a boto3 client makes and their arguments, seen through botocore's own event hook."""

    def __init__(self, client: Any) -> None:
        self.made: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register_first("provide-client-params", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.made.append((model.name, dict(params)))

    def names(self) -> list[str]:
        return [name for name, _ in self.made]

    def clear(self) -> None:
        self.made.clear()


@pytest.fixture
def store(clients: AwsClients, names: AwsNames) -> S3BlobStore:
    ensure_bucket(clients.s3, names.bucket, region="us-east-1")
    return S3BlobStore(clients.s3, names.bucket, part_size=MIN_PART_SIZE)


@pytest.fixture
def jobs(clients: AwsClients, names: AwsNames) -> DynamoJobStore:
    ensure_table(clients.dynamodb, names.table)
    return DynamoJobStore(clients.dynamodb, names.table)


def random_stream(total: int, chunk: int = 256 * 1024, seed: int = 3) -> Iterator[bytes]:
    rand = random.Random(seed)
    sent = 0
    while sent < total:
        size = min(chunk, total - sent)
        yield rand.randbytes(size)
        sent += size


def sha256_of(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def open_uploads(clients: AwsClients, bucket: str) -> list[str]:
    return [upload.get("Key", "") for upload in clients.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


# --- S3 -------------------------------------------------------------------------------------------

def test_a_stream_longer_than_a_part_goes_up_in_parts_and_is_hashed_whole(
        store: S3BlobStore, clients: AwsClients) -> None:
    total = 12 * MIB + 7
    calls = Calls(clients.s3)
    stored = store.put_stream(KEY, random_stream(total), content_type="video/mp4", metadata={"job_id": "job_x"})
    assert (stored.size, stored.sha256) == (total, sha256_of(random_stream(total)))
    assert calls.names().count("UploadPart") == 3
    assert "CopyObject" not in calls.names()  # the object is never rewritten to add its hash
    head = clients.s3.head_object(Bucket=store.bucket, Key=KEY)
    assert head["Metadata"] == {"job_id": "job_x"}
    sidecar = json.loads(clients.s3.get_object(Bucket=store.bucket, Key=KEY + SIDECAR_SUFFIX)["Body"].read())
    assert sidecar == {"etag": head["ETag"], "size": total, "sha256": stored.sha256}
    assert open_uploads(clients, store.bucket) == []


def test_head_of_a_multipart_object_reads_its_sidecar_not_its_bytes(store: S3BlobStore, clients: AwsClients) -> None:
    stored = store.put_stream(KEY, random_stream(11 * MIB), content_type="video/mp4")
    calls = Calls(clients.s3)
    assert store.head(KEY) == stored
    assert [(name, params["Key"]) for name, params in calls.made] == [
        ("HeadObject", KEY), ("GetObject", KEY + SIDECAR_SUFFIX)]


def test_a_sidecar_of_another_object_is_not_trusted_and_is_replaced(store: S3BlobStore, clients: AwsClients) -> None:
    store.put_stream(KEY, random_stream(11 * MIB), content_type="video/mp4")
    clients.s3.put_object(Bucket=store.bucket, Key=KEY, Body=b"replaced by someone else", ContentType="video/mp4")
    head = store.head(KEY)
    assert head is not None
    assert (head.size, head.sha256) == (24, hashlib.sha256(b"replaced by someone else").hexdigest())
    calls = Calls(clients.s3)
    assert store.head(KEY) == head
    assert [(name, params["Key"]) for name, params in calls.made] == [
        ("HeadObject", KEY), ("GetObject", KEY + SIDECAR_SUFFIX)]  # the re-hash left a sidecar for this object


@pytest.mark.parametrize("sidecar_fault", ["not json", "unreachable"])
def test_a_sidecar_that_cannot_be_read_means_a_rehash_not_an_error(
        store: S3BlobStore, clients: AwsClients, sidecar_fault: str) -> None:
    stored = store.put_stream(KEY, random_stream(6 * MIB), content_type="video/mp4")

    def refuse_sidecar(params: dict[str, Any], **_: Any) -> None:
        if str(params.get("Key", "")).endswith(SIDECAR_SUFFIX):
            raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    if sidecar_fault == "not json":
        clients.s3.put_object(Bucket=store.bucket, Key=KEY + SIDECAR_SUFFIX, Body=b"{not json")
    else:
        clients.s3.meta.events.register("provide-client-params.s3.GetObject", refuse_sidecar)
    try:
        with rendered_logs("warning") as logs:
            assert store.head(KEY) == stored
    finally:
        clients.s3.meta.events.unregister("provide-client-params.s3.GetObject", refuse_sidecar)
    assert "blob.sidecar_unreadable" in logs.getvalue()


def test_a_body_that_arrives_a_few_bytes_at_a_time_costs_no_more_memory(clients: AwsClients, names: AwsNames) -> None:
    """Tiny pieces (a hostile or broken result host) are gathered before they are queued for a part."""
    ensure_bucket(clients.s3, names.bucket, region="us-east-1")
    store = S3BlobStore(clients.s3, names.bucket, part_size=MIN_PART_SIZE, concurrency=2)
    block = random.Random(5).randbytes(MIB)
    total = 6 * MIB

    def trickle() -> Iterator[bytes]:
        for offset in range(0, total, 16):
            yield block[offset % MIB:offset % MIB + 16]

    expected = hashlib.sha256(block * 6).hexdigest()
    tracemalloc.start()
    try:
        stored = store.put_stream(KEY, trickle(), content_type="video/mp4")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (stored.size, stored.sha256) == (total, expected) == (total, sha256_of(store.read(KEY)))
    assert peak < (2 + 3) * MIN_PART_SIZE


def test_parts_go_up_concurrently_but_never_more_than_concurrency_at_once(
        clients: AwsClients, names: AwsNames) -> None:
    ensure_bucket(clients.s3, names.bucket, region="us-east-1")
    store = S3BlobStore(clients.s3, names.bucket, part_size=MIN_PART_SIZE, concurrency=2)
    lock, now, most = threading.Lock(), [0], [0]

    def started(**_: Any) -> None:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])

    def ended(**_: Any) -> None:
        with lock:
            now[0] -= 1

    clients.s3.meta.events.register("before-call.s3.UploadPart", started)
    clients.s3.meta.events.register("after-call.s3.UploadPart", ended)
    calls = Calls(clients.s3)
    try:
        stored = store.put_stream(KEY, random_stream(8 * MIN_PART_SIZE), content_type="video/mp4")
    finally:
        clients.s3.meta.events.unregister("before-call.s3.UploadPart", started)
        clients.s3.meta.events.unregister("after-call.s3.UploadPart", ended)
    assert most[0] == 2
    bodies = [params["Body"] for name, params in calls.made if name == "UploadPart"]
    assert len(bodies) == 8
    assert len({id(body) for body in bodies}) <= 2 + 1  # part buffers are reused, not allocated per part
    assert stored.sha256 == sha256_of(random_stream(8 * MIN_PART_SIZE)) == sha256_of(store.read(KEY))


def test_a_part_that_fails_aborts_the_upload_with_a_storage_error_naming_it(
        store: S3BlobStore, clients: AwsClients) -> None:
    def fail_part_three(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == 3:
            raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    calls = Calls(clients.s3)
    clients.s3.meta.events.register("provide-client-params.s3.UploadPart", fail_part_three)
    with pytest.raises(StorageError, match="upload part 3 of") as caught:
        store.put_stream(KEY, random_stream(6 * MIN_PART_SIZE), content_type="video/mp4")
    clients.s3.meta.events.unregister("provide-client-params.s3.UploadPart", fail_part_three)
    assert caught.value.code == "EndpointConnectionError"
    assert calls.names()[-1] == "AbortMultipartUpload"
    assert "CompleteMultipartUpload" not in calls.names()
    assert store.head(KEY) is None
    assert open_uploads(clients, store.bucket) == []


def test_a_sidecar_that_cannot_be_written_costs_a_rehash_not_the_object(
        store: S3BlobStore, clients: AwsClients) -> None:
    def refuse_sidecar(params: dict[str, Any], **_: Any) -> None:
        if str(params.get("Key", "")).endswith(SIDECAR_SUFFIX):
            raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    clients.s3.meta.events.register("provide-client-params.s3.PutObject", refuse_sidecar)
    try:
        with rendered_logs("warning") as logs:
            stored = store.put_stream(KEY, random_stream(6 * MIB), content_type="video/mp4")
    finally:
        clients.s3.meta.events.unregister("provide-client-params.s3.PutObject", refuse_sidecar)
    assert [json.loads(line)["event"] for line in logs.getvalue().splitlines()] == ["blob.sidecar_failed"]
    calls = Calls(clients.s3)
    assert store.head(KEY) == stored
    assert ("GetObject", KEY) in [(name, params["Key"]) for name, params in calls.made]  # re-hashed


def test_one_huge_chunk_is_cut_into_parts_of_part_size(store: S3BlobStore, clients: AwsClients) -> None:
    calls = Calls(clients.s3)
    store.put_stream(KEY, [b"v" * (12 * MIB)], content_type="video/mp4")
    sizes = sorted((params["PartNumber"], len(params["Body"])) for name, params in calls.made if name == "UploadPart")
    assert sizes == [(1, 5 * MIB), (2, 5 * MIB), (3, 2 * MIB)]


def test_memory_stays_bounded_by_the_parts_in_flight_whatever_the_length(
        clients: AwsClients, names: AwsNames) -> None:
    ensure_bucket(clients.s3, names.bucket, region="us-east-1")
    store = S3BlobStore(clients.s3, names.bucket, part_size=MIN_PART_SIZE, concurrency=2)
    tracemalloc.start()
    try:
        store.put_stream(KEY, random_stream(64 * MIB), content_type="video/mp4")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the parts in flight, the part being joined and the bytes it is joined from; not the 64 MiB
    assert peak < (2 + 3) * MIN_PART_SIZE


def test_a_stream_that_fits_in_one_part_is_one_conditional_put(store: S3BlobStore, clients: AwsClients) -> None:
    calls = Calls(clients.s3)
    stored = store.put_stream(KEY, [b"frames"], content_type="video/mp4")
    assert calls.names() == ["HeadObject", "PutObject"]
    assert calls.made[1][1]["IfNoneMatch"] == "*"
    head = clients.s3.head_object(Bucket=store.bucket, Key=KEY)
    assert head["Metadata"] == {"sha256": hashlib.sha256(b"frames").hexdigest()} == {"sha256": stored.sha256}


class DownloadDropped(Exception):
    pass


def test_a_stream_failing_after_a_part_aborts_the_upload_and_raises_the_callers_error(
        store: S3BlobStore, clients: AwsClients) -> None:
    error = DownloadDropped("peer went away")

    def chunks() -> Iterator[bytes]:
        yield from random_stream(7 * MIB)
        raise error

    calls = Calls(clients.s3)
    with pytest.raises(DownloadDropped) as caught:
        store.put_stream(KEY, chunks(), content_type="video/mp4")
    assert caught.value is error
    made = calls.names()
    # the part in flight may or may not have gone up before the abort: either way it is dropped
    assert made[-1] == "AbortMultipartUpload" and "CreateMultipartUpload" in made
    assert made.count("UploadPart") <= 1 and "CompleteMultipartUpload" not in made
    assert store.head(KEY) is None
    assert open_uploads(clients, store.bucket) == []


class Trickle:
    """A body that offers only ``readinto``, at most ``most`` bytes a call, as a socket delivers
    them; it notes every buffer it fills and raises ``error`` once ``fail_at`` bytes are out."""

    def __init__(self, data: bytes, *, most: int = MIB + 3, fail_at: int | None = None,
                 error: Exception | None = None) -> None:
        self.data, self.most, self.fail_at, self.error = data, most, fail_at, error
        self.position = 0
        self.filled: set[int] = set()

    def readinto(self, buffer: memoryview) -> int:
        if self.fail_at is not None and self.position >= self.fail_at and self.error is not None:
            raise self.error
        count = min(len(buffer), self.most, len(self.data) - self.position)
        buffer[:count] = self.data[self.position:self.position + count]
        self.position += count
        self.filled.add(id(buffer.obj))
        return count


@pytest.mark.parametrize("total", [0, 10, MIN_PART_SIZE - 1, MIN_PART_SIZE, MIN_PART_SIZE + 1,
                                   3 * MIN_PART_SIZE, 3 * MIN_PART_SIZE + 7])
def test_a_body_with_readinto_is_read_straight_into_the_part_buffers(
        store: S3BlobStore, clients: AwsClients, total: int) -> None:
    data = random.Random(total).randbytes(total)
    body, calls = Trickle(data), Calls(clients.s3)
    stored = store.put_stream(KEY, body, content_type="video/mp4")
    assert (stored.size, stored.sha256) == (total, hashlib.sha256(data).hexdigest())
    assert b"".join(store.read(KEY)) == data
    parts = sorted((params["PartNumber"], params["Body"]) for name, params in calls.made if name == "UploadPart")
    if total <= MIN_PART_SIZE:  # a body of up to one part is still one PutObject, its sha256 in the metadata
        assert parts == [] and calls.names().count("PutObject") == 1
        assert clients.s3.head_object(Bucket=store.bucket, Key=KEY)["Metadata"] == {"sha256": stored.sha256}
        return
    count, rest = divmod(total, MIN_PART_SIZE)
    assert [len(part) for _, part in parts] == [MIN_PART_SIZE] * count + ([rest] if rest else [])
    # every part but the last went up from the very buffer the body wrote into: nothing was copied
    assert all(id(part) in body.filled for _, part in parts[:-1])


def test_memory_stays_bounded_when_a_body_is_read_into_the_part_buffers(
        clients: AwsClients, names: AwsNames) -> None:
    ensure_bucket(clients.s3, names.bucket, region="us-east-1")
    store = S3BlobStore(clients.s3, names.bucket, part_size=MIN_PART_SIZE, concurrency=2)
    body = Trickle(random.Random(5).randbytes(64 * MIB))  # made before tracing starts: not counted
    tracemalloc.start()
    try:
        stored = store.put_stream(KEY, body, content_type="video/mp4")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.sha256 == hashlib.sha256(body.data).hexdigest()
    assert peak < (2 + 3) * MIN_PART_SIZE  # the parts in flight, the one held back, the one filling


def test_a_body_failing_in_readinto_aborts_the_upload_and_raises_its_error(
        store: S3BlobStore, clients: AwsClients) -> None:
    error = DownloadDropped("peer went away")
    body, calls = Trickle(b"v" * (4 * MIN_PART_SIZE), fail_at=2 * MIN_PART_SIZE + 1, error=error), Calls(clients.s3)
    with pytest.raises(DownloadDropped) as caught:
        store.put_stream(KEY, body, content_type="video/mp4")
    assert caught.value is error
    made = calls.names()
    assert made[-1] == "AbortMultipartUpload" and "CompleteMultipartUpload" not in made
    assert store.head(KEY) is None
    assert open_uploads(clients, store.bucket) == []


def test_racing_writers_of_one_key_leave_one_object_and_all_return_it(store: S3BlobStore) -> None:
    """Four writers all find the key empty, then write: one wins, the others get 412 and adopt its object.

    S3 decides a conditional write atomically; moto checks it apart from the write, so
    the writes here go 0.1 s apart (the race that matters is between looking and writing).
    """
    barrier = threading.Barrier(4)
    results: list[Any] = [None] * 4

    def chunks(n: int) -> Iterator[bytes]:
        barrier.wait()  # every writer has looked at the key before anyone writes
        time.sleep(0.1 * n)
        yield f"writer {n}".encode() * 100

    def write(n: int) -> None:
        results[n] = store.put_stream(KEY, chunks(n), content_type="text/plain")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[0] is not None
    assert results == [results[0]] * 4
    assert store.head(KEY) == results[0]
    assert sha256_of(store.read(KEY)) == results[0].sha256


def test_a_multipart_writer_that_loses_the_race_aborts_and_returns_the_winners_object(
        store: S3BlobStore, clients: AwsClients) -> None:
    def chunks() -> Iterator[bytes]:
        yield from random_stream(6 * MIB)
        winner.append(store.put_stream(KEY, [b"the winner"], content_type="text/plain"))
        yield b"tail"

    winner: list[Any] = []
    result = store.put_stream(KEY, chunks(), content_type="video/mp4")
    assert result == winner[0] == store.head(KEY)
    assert b"".join(store.read(KEY)) == b"the winner"
    assert open_uploads(clients, store.bucket) == []


def test_a_writer_replaces_only_the_object_it_saw(store: S3BlobStore, clients: AwsClients) -> None:
    store.put_stream(KEY, [b"first"], content_type="text/plain")

    def chunks() -> Iterator[bytes]:
        store.put_stream(KEY, [b"second, written meanwhile"], content_type="text/plain")
        yield b"third"

    calls = Calls(clients.s3)
    result = store.put_stream(KEY, chunks(), content_type="text/plain")
    puts = [params for name, params in calls.made if name == "PutObject"]
    assert len(puts) == 2
    assert all("IfMatch" in params for params in puts)
    assert b"".join(store.read(KEY)) == b"second, written meanwhile"
    assert result == store.head(KEY)


@pytest.mark.parametrize("size", [10, 6 * MIB], ids=["one-part", "multipart"])
def test_objects_are_encrypted_at_rest_with_sse_s3(store: S3BlobStore, clients: AwsClients, size: int) -> None:
    store.put_stream(KEY, [b"x" * size], content_type="video/mp4")
    assert clients.s3.head_object(Bucket=store.bucket, Key=KEY)["ServerSideEncryption"] == "AES256"


def test_a_kms_key_encrypts_with_sse_kms(clients: AwsClients, names: AwsNames) -> None:
    ensure_bucket(clients.s3, names.bucket, region="us-east-1", kms_key_id="alias/relay")
    store = S3BlobStore(clients.s3, names.bucket, kms_key_id="alias/relay")
    store.put_stream(KEY, [b"secret frames"], content_type="video/mp4")
    head = clients.s3.head_object(Bucket=names.bucket, Key=KEY)
    assert (head["ServerSideEncryption"], head.get("SSEKMSKeyId")) == ("aws:kms", "alias/relay")


def test_head_rehashes_an_object_stored_without_its_sha256_once(store: S3BlobStore, clients: AwsClients) -> None:
    clients.s3.put_object(Bucket=store.bucket, Key=KEY, Body=b"written by someone else", ContentType="video/mp4")
    calls = Calls(clients.s3)
    head = store.head(KEY)
    assert head is not None
    assert (head.size, head.sha256, head.uri) == (
        23, hashlib.sha256(b"written by someone else").hexdigest(), f"s3://{store.bucket}/{KEY}")
    etag = clients.s3.head_object(Bucket=store.bucket, Key=KEY)["ETag"]
    assert ("GetObject", {"Bucket": store.bucket, "Key": KEY, "IfMatch": etag}) in calls.made  # that very version
    calls.clear()
    assert store.head(KEY) == head
    assert [name for name, _ in calls.made] == ["HeadObject", "GetObject"]  # the sidecar, not the object


def test_read_streams_the_body_in_64_kib_chunks(store: S3BlobStore) -> None:
    store.put_stream(KEY, [b"z" * (200 * 1024)], content_type="video/mp4")
    assert [len(chunk) for chunk in store.read(KEY)] == [65536, 65536, 65536, 8192]


def test_a_presigned_url_downloads_the_object_without_credentials(store: S3BlobStore) -> None:
    store.put_stream(KEY, [b"frames"], content_type="video/mp4")
    url = store.presign(KEY, expires_in=60)
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"frames"


def test_a_missing_bucket_is_a_storage_error_with_the_aws_code(clients: AwsClients) -> None:
    store = S3BlobStore(clients.s3, f"missing-{uuid.uuid4().hex[:12]}")
    with pytest.raises(StorageError, match="NoSuchBucket") as caught:
        store.put_stream(KEY, [b"x"], content_type="video/mp4")
    assert caught.value.code == "NoSuchBucket"
    assert isinstance(caught.value.__cause__, ClientError)


def test_an_unreachable_endpoint_is_a_storage_error_naming_the_failure() -> None:
    config = Config(retries={"max_attempts": 1}, connect_timeout=1, s3={"addressing_style": "path"})
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1",
                          config=config)
    with pytest.raises(StorageError) as caught:
        S3BlobStore(client, "nowhere").head(KEY)
    assert caught.value.code == "EndpointConnectionError"


# --- DynamoDB -------------------------------------------------------------------------------------

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
                                                      "ConsistentRead": True, "ProjectionExpression": "#id",
                                                      "ExpressionAttributeNames": {"#id": "id"}}}

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
    jobs.update(waiting.evolve(T0 + 2, check_at=None))
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
    assert caught.value.code == "ResourceNotFoundException"


def test_table_spec_is_the_table_bootstrap_creates(jobs: DynamoJobStore, clients: AwsClients) -> None:
    table = clients.dynamodb.describe_table(TableName=jobs.table)["Table"]
    created = {index["IndexName"]: index["KeySchema"] for index in table.get("GlobalSecondaryIndexes", [])}
    assert created == {index["IndexName"]: index["KeySchema"] for index in TABLE_SPEC["GlobalSecondaryIndexes"]}
    assert table["KeySchema"] == TABLE_SPEC["KeySchema"]


# --- SQS, on SQS's own clock ----------------------------------------------------------------------

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
    assert caught.value.code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def test_a_body_that_is_not_a_json_object_arrives_raw(sqs_queue: SqsWorkQueue, clients: AwsClients) -> None:
    clients.sqs.send_message(QueueUrl=sqs_queue.queue_url, MessageBody="not json")
    assert only(sqs_queue.receive()).body == {"raw": "not json"}


# --- SNS ------------------------------------------------------------------------------------------

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
    ledger.once("evt-1", lambda: published.append("evt-1"))
    assert (published, clock.sleeps) == ([], 1)


def test_a_publisher_gives_up_on_a_claim_that_outlives_its_lease(jobs: DynamoJobStore, clients: AwsClients) -> None:
    claim_elsewhere(clients, jobs.table, "evt-1")
    clock = LedgerClock()
    ledger = DynamoEventLedger(clients.dynamodb, jobs.table, clock=clock, sleep=clock.sleep, lease_seconds=30,
                               poll_interval=5)
    published: list[str] = []
    with pytest.raises(QueueError, match="evt-1") as caught:
        ledger.once("evt-1", lambda: published.append("evt-1"))
    assert (caught.value.code, published) == ("publish_in_progress", [])


def test_without_a_ledger_sns_delivers_every_publish(wired: dict[str, Any], clients: AwsClients) -> None:
    bus = SnsEventBus(clients.sns, clients.sqs, wired["result"].topic_arn, {})
    bus.publish(cloud_event("evt-1"))
    bus.publish(cloud_event("evt-1"))
    assert len(raw_messages(clients, wired["result"].subscriber_queues["everything"].url)) == 2


# --- clients --------------------------------------------------------------------------------------

def test_clients_retry_in_standard_mode_over_a_32_connection_pool(moto_server: str) -> None:
    clients = aws_clients(AwsNames(region="eu-west-1"), endpoint_url=moto_server)
    config = clients.sqs.meta.config
    assert (config.retries or {}).get("mode") == "standard"
    assert (config.max_pool_connections, config.region_name) == (32, "eu-west-1")


def test_an_endpoint_from_the_environment_makes_s3_path_style(monkeypatch: pytest.MonkeyPatch,
                                                              moto_server: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    clients = aws_clients(AwsNames())
    assert clients.s3.meta.endpoint_url == moto_server
    assert (clients.s3.meta.config.s3 or {}).get("addressing_style") == "path"


def test_an_explicit_endpoint_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch, moto_server: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert aws_clients(AwsNames(), endpoint_url=moto_server).dynamodb.meta.endpoint_url == moto_server
