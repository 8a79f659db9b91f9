"""BlobStore contract: streamed all-or-nothing writes with size and sha256, safe keys."""

from __future__ import annotations

import hashlib
import random
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from handlers.adapters.local import FolderBlobStore
from handlers.base.errors import NotFound, StorageError
from handlers.ports import BlobStore
from tests.contract.conftest import blob_leftovers

KEY = "jobs/job_x/output-0.mp4"


def random_chunks(total: int, seed: int = 7) -> Iterator[bytes]:
    """``total`` pseudo-random bytes in chunks of uneven size."""
    rand = random.Random(seed)
    sent = 0
    while sent < total:
        size = min(rand.randint(1, 300_000), total - sent)
        yield rand.randbytes(size)
        sent += size


def failing_after(chunks: int) -> Iterator[bytes]:
    for _ in range(chunks):
        yield b"x" * 100_000
    raise ConnectionError("download dropped")


def test_put_stream_reports_size_and_sha256_of_a_multi_mib_stream(blob_store: BlobStore) -> None:
    total = 5 * 1024 * 1024 + 123
    expected = hashlib.sha256(b"".join(random_chunks(total))).hexdigest()
    stored = blob_store.put_stream(KEY, random_chunks(total), content_type="video/mp4",
                                   metadata={"job_id": "job_x"})
    assert (stored.key, stored.size, stored.sha256, stored.content_type) == (
        KEY, total, expected, "video/mp4")
    assert blob_store.head(KEY) == stored
    assert hashlib.sha256(b"".join(blob_store.read(KEY))).hexdigest() == expected


def test_head_of_a_missing_key_is_none(blob_store: BlobStore) -> None:
    assert blob_store.head("jobs/nobody/output-0.mp4") is None


def test_read_of_a_missing_key_raises_not_found(blob_store: BlobStore) -> None:
    with pytest.raises(NotFound, match="nobody"):
        b"".join(blob_store.read("jobs/nobody/output-0.mp4"))


def test_a_stream_that_fails_midway_leaves_nothing_at_the_key(blob_store: BlobStore) -> None:
    with pytest.raises(ConnectionError, match="dropped"):
        blob_store.put_stream(KEY, failing_after(3), content_type="video/mp4")
    assert blob_store.head(KEY) is None
    assert blob_leftovers(blob_store) == []


def test_a_stream_that_fails_midway_keeps_the_previous_object(blob_store: BlobStore) -> None:
    before = blob_store.put_stream(KEY, [b"first version"], content_type="text/plain")
    with pytest.raises(ConnectionError, match="dropped"):
        blob_store.put_stream(KEY, failing_after(2), content_type="video/mp4")
    assert blob_store.head(KEY) == before
    assert b"".join(blob_store.read(KEY)) == b"first version"
    assert blob_leftovers(blob_store) == []


def test_read_range_returns_the_bytes_of_the_range_and_fewer_at_the_end(blob_store: BlobStore) -> None:
    data = b"".join(random_chunks(300_000, seed=3))
    blob_store.put_stream(KEY, [data], content_type="video/mp4")
    assert blob_store.read_range(KEY, 0, 10) == data[:10]
    assert blob_store.read_range(KEY, 123_456, 70_000) == data[123_456:193_456]
    assert blob_store.read_range(KEY, 299_990, 100) == data[299_990:]
    assert blob_store.read_range(KEY, 400_000, 10) == b""
    with pytest.raises(NotFound):
        blob_store.read_range("jobs/job_x/missing.mp4", 0, 10)


def test_only_new_stores_on_an_empty_key_and_keeps_what_is_there_otherwise(blob_store: BlobStore) -> None:
    first = blob_store.put_stream(KEY, [b"first"], content_type="video/mp4", only_new=True)
    assert (first.size, first.sha256) == (5, hashlib.sha256(b"first").hexdigest())
    kept = blob_store.put_stream(KEY, [b"second, longer"], content_type="video/mp4", only_new=True)
    assert (kept.size, kept.sha256) == (first.size, first.sha256)
    assert b"".join(blob_store.read(KEY)) == b"first"
    assert blob_leftovers(blob_store) == []


def test_only_new_keeps_the_object_there_when_the_stream_is_many_parts_long(blob_store: BlobStore) -> None:
    blob_store.put_stream(KEY, [b"first"], content_type="video/mp4")
    kept = blob_store.put_stream(KEY, random_chunks(5 * 1024 * 1024 + 7), content_type="video/mp4", only_new=True)
    assert kept.size == 5 and b"".join(blob_store.read(KEY)) == b"first"
    assert blob_leftovers(blob_store) == []


def test_put_stream_replaces_an_existing_object_whole(blob_store: BlobStore) -> None:
    blob_store.put_stream(KEY, [b"a" * 1000], content_type="text/plain")
    stored = blob_store.put_stream(KEY, [b"b", b"c"], content_type="video/mp4")
    assert (stored.size, stored.content_type) == (2, "video/mp4")
    assert blob_store.head(KEY) == stored
    assert b"".join(blob_store.read(KEY)) == b"bc"


def test_an_empty_stream_stores_an_empty_object(blob_store: BlobStore) -> None:
    stored = blob_store.put_stream("empty.bin", [], content_type="application/octet-stream")
    assert (stored.size, stored.sha256) == (0, hashlib.sha256(b"").hexdigest())


def test_uri_names_the_stored_object(blob_store: BlobStore) -> None:
    stored = blob_store.put_stream(KEY, [b"data"], content_type="video/mp4")
    assert blob_store.uri(KEY) == stored.uri
    assert stored.uri.endswith(KEY)


@pytest.mark.parametrize("key", [
    "../escape.mp4", "jobs/../../escape.mp4", "/etc/passwd", "jobs/..", "", "jobs\\..\\escape",
    "jobs/job_x/output-0.mp4.meta.json",
])
def test_keys_that_could_leave_the_store_are_refused(blob_store: BlobStore, key: str) -> None:
    with pytest.raises(StorageError, match="refused"):
        blob_store.put_stream(key, [b"x"], content_type="text/plain")
    with pytest.raises(StorageError, match="refused"):
        blob_store.head(key)


@pytest.mark.parametrize("key", ["../escape.mp4", "/etc/passwd", "jobs/job_x/output-0.mp4.meta.json"])
def test_the_optional_abilities_refuse_unsafe_keys_too(blob_store: BlobStore, key: str) -> None:
    """``presign`` and ``local_path`` check the key as every other call does, even where they answer ``None``."""
    with pytest.raises(StorageError, match="refused"):
        blob_store.presign(key, 60)
    with pytest.raises(StorageError, match="refused"):
        blob_store.local_path(key)


def test_every_store_offers_a_url_or_a_local_file_with_the_bytes(blob_store: BlobStore) -> None:
    """Callers need no store type: one of the two abilities always reaches the object's bytes."""
    blob_store.put_stream(KEY, [b"frames"], content_type="video/mp4")
    url, path = blob_store.presign(KEY, 60), blob_store.local_path(KEY)
    assert (url is None) != (path is None)
    if url is not None:
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b"frames"
    else:
        assert path is not None and path.read_bytes() == b"frames"


def test_local_store_presigns_nothing_and_names_the_file_with_the_bytes(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path / "blobs")
    stored = store.put_stream(KEY, [b"frames"], content_type="video/mp4")
    path = store.local_path(KEY)
    assert store.presign(KEY, 60) is None
    assert path.is_absolute() and path.is_file() and path.read_bytes() == b"frames"
    assert path.as_uri() == stored.uri


def test_local_uri_is_an_absolute_file_uri_of_the_bytes(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path / "blobs")
    stored = store.put_stream(KEY, [b"frames"], content_type="video/mp4")
    path = Path(unquote(urlparse(stored.uri).path))
    assert stored.uri.startswith("file:///")
    assert path.is_absolute()
    assert path.read_bytes() == b"frames"


def test_local_head_rehashes_when_the_sidecar_is_missing(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path / "blobs")
    stored = store.put_stream(KEY, [b"frames"], content_type="video/mp4")
    (store.root / (KEY + ".meta.json")).unlink()
    head = store.head(KEY)
    assert head is not None
    assert (head.size, head.sha256, head.content_type) == (
        stored.size, stored.sha256, "application/octet-stream")


def test_local_read_yields_chunks_of_64_kib(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path / "blobs")
    store.put_stream(KEY, [b"z" * (200 * 1024)], content_type="video/mp4")
    assert [len(chunk) for chunk in store.read(KEY)] == [65536, 65536, 65536, 8192]


def test_local_disk_errors_surface_as_storage_error(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path / "blobs")
    store.put_stream("jobs", [b"a file where a folder should be"], content_type="text/plain")
    with pytest.raises(StorageError, match="could not store") as caught:
        store.put_stream("jobs/job_x/output-0.mp4", [b"x"], content_type="video/mp4")
    assert caught.value.code == "write_failed"
