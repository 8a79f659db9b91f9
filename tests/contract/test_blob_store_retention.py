"""BlobStore contract, retention: ``older`` lists the objects under a prefix written before a time, and
``delete`` removes objects with whatever the store keeps beside them."""

from __future__ import annotations

import time

from handlers.ports import BlobStore, ListedObject
from tests.contract.conftest import blob_leftovers

HOUR = 3600.0


def put(store: BlobStore, key: str, data: bytes = b"video bytes") -> None:
    store.put_stream(key, [data], content_type="video/mp4")


def keys(listed: list[ListedObject]) -> list[str]:
    return [item.key for item in listed]


def test_older_lists_the_objects_under_the_prefix_written_before_the_time(blob_store: BlobStore) -> None:
    put(blob_store, "jobs/job_a/output-0.mp4", b"a" * 10)
    put(blob_store, "jobs/job_b/manifest.json", b"b" * 20)
    put(blob_store, "uploads/default/x.png", b"c" * 30)
    later = time.time() + HOUR
    listed = blob_store.older("jobs/", later)
    assert keys(listed) == ["jobs/job_a/output-0.mp4", "jobs/job_b/manifest.json"]
    assert [item.size for item in listed] == [10, 20]
    assert all(item.modified < later for item in listed)


def test_older_leaves_out_what_was_written_after_the_time(blob_store: BlobStore) -> None:
    put(blob_store, "jobs/job_a/output-0.mp4")
    assert blob_store.older("jobs/", time.time() - HOUR) == []


def test_older_of_an_empty_prefix_is_empty(blob_store: BlobStore) -> None:
    assert blob_store.older("uploads/", time.time() + HOUR) == []


def test_older_stops_at_the_limit(blob_store: BlobStore) -> None:
    for n in range(5):
        put(blob_store, f"jobs/job_{n}/output-0.mp4")
    assert len(blob_store.older("jobs/", time.time() + HOUR, limit=3)) == 3


def test_delete_removes_the_objects_and_a_missing_key_is_no_error(blob_store: BlobStore) -> None:
    put(blob_store, "jobs/job_a/output-0.mp4")
    put(blob_store, "jobs/job_a/manifest.json")
    put(blob_store, "jobs/job_b/output-0.mp4")
    blob_store.delete(["jobs/job_a/output-0.mp4", "jobs/job_a/manifest.json", "jobs/job_gone/output-0.mp4"])
    assert blob_store.head("jobs/job_a/output-0.mp4") is None
    assert keys(blob_store.older("jobs/", time.time() + HOUR)) == ["jobs/job_b/output-0.mp4"]
    assert blob_leftovers(blob_store) == []


def test_a_multi_part_object_is_deleted_with_what_the_store_keeps_beside_it(blob_store: BlobStore) -> None:
    """A large object's hash lives in a sidecar on S3: nothing of the object stays listed."""
    put(blob_store, "jobs/job_a/output-0.mp4", b"v" * (6 * 1024 * 1024))
    assert blob_store.head("jobs/job_a/output-0.mp4") is not None
    blob_store.delete(["jobs/job_a/output-0.mp4"])
    assert blob_store.older("jobs/", time.time() + HOUR) == []
    assert blob_store.head("jobs/job_a/output-0.mp4") is None


def test_a_key_can_be_written_again_after_its_folder_was_emptied(blob_store: BlobStore) -> None:
    put(blob_store, "uploads/default/a.png")
    blob_store.delete(["uploads/default/a.png"])
    put(blob_store, "uploads/default/b.png", b"again")
    assert b"".join(blob_store.read("uploads/default/b.png")) == b"again"
