"""What only the S3 blob store does, against moto in server mode over HTTP: multipart uploads with
parts in flight, sha256 sidecars, conditional writes, encryption, and the translation of botocore errors.

Calls are observed through botocore's own event hooks, never patched.
"""

from __future__ import annotations

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

from handlers.adapters.aws import AwsClients, AwsNames, S3BlobStore
from handlers.adapters.aws.blobs import MIB, MIN_PART_SIZE, SIDECAR_SUFFIX
from handlers.adapters.aws.bootstrap import ensure_bucket
from handlers.adapters.aws.errors import aws_code
from handlers.base.errors import StorageError
from handlers.net.server import free_port
from tests.support.aws_calls import Calls
from tests.support.logs import rendered_logs

pytestmark = pytest.mark.integration

KEY = "jobs/job_x/output-0.mp4"

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
    assert (caught.value.code, aws_code(caught.value)) == ("unavailable", "EndpointConnectionError")
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
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"frames"


def test_an_s3_object_has_no_local_path(store: S3BlobStore) -> None:
    store.put_stream(KEY, [b"frames"], content_type="video/mp4")
    assert store.local_path(KEY) is None


def test_a_missing_bucket_is_a_storage_error_with_our_code_and_the_aws_code_beside_it(clients: AwsClients) -> None:
    store = S3BlobStore(clients.s3, f"missing-{uuid.uuid4().hex[:12]}")
    with pytest.raises(StorageError, match="NoSuchBucket") as caught:
        store.put_stream(KEY, [b"x"], content_type="video/mp4")
    assert (caught.value.code, aws_code(caught.value)) == ("missing_resource", "NoSuchBucket")
    assert isinstance(caught.value.__cause__, ClientError)


def test_an_unreachable_endpoint_is_a_storage_error_naming_the_failure() -> None:
    config = Config(retries={"max_attempts": 1}, connect_timeout=1, s3={"addressing_style": "path"})
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1",
                          config=config)
    with pytest.raises(StorageError) as caught:
        S3BlobStore(client, "nowhere").head(KEY)
    assert (caught.value.code, aws_code(caught.value)) == ("unavailable", "EndpointConnectionError")
