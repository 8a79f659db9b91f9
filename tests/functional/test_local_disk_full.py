"""A full disk under the local adapters is StorageFull, and no local adapter's error names a path.

SQLite is made full honestly with ``PRAGMA max_page_count`` on the very connection the
adapter writes through (SQLite answers ``SQLITE_FULL``, as it does for ``ENOSPC``); the blob
store's disk with ``RLIMIT_FSIZE`` in a child process, where a write past the limit fails
with ``EFBIG`` (``SIGXFSZ`` ignored so the child lives to report it).
"""

from __future__ import annotations

import errno
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from handlers.adapters.local import FolderBlobStore, SqliteDatabase, SqliteWorkQueue
from handlers.adapters.local.queue import SCHEMA
from handlers.base.errors import QueueError, StorageError, StorageFull


def _full_queue(path: Path) -> tuple[SqliteDatabase, SqliteWorkQueue]:
    """A work queue whose database may not grow by a single page beyond what it holds now."""
    database = SqliteDatabase(path, schema=SCHEMA, error=QueueError)
    queue = SqliteWorkQueue(path, "ingest", database=database)
    connection = database.connection()
    (pages,) = connection.execute("PRAGMA page_count").fetchone()
    connection.execute(f"PRAGMA max_page_count = {pages}")
    return database, queue


def test_a_full_sqlite_database_is_storage_full_without_a_path(tmp_path: Path) -> None:
    """SQLITE_FULL on a queue write leaves as StorageFull (code storage_full), raised from the sqlite error."""
    database, queue = _full_queue(tmp_path / "relay.sqlite3")
    try:
        with pytest.raises(StorageFull, match="out of space") as caught:
            queue.send({"pad": "x" * 100_000})
    finally:
        database.close()
    assert caught.value.code == "storage_full"
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert str(tmp_path) not in caught.value.message and "relay.sqlite3" not in caught.value.message


def test_a_full_sqlite_transaction_is_rolled_back_and_storage_full(tmp_path: Path) -> None:
    """A batch that does not fit raises StorageFull and leaves the queue as it was."""
    database, queue = _full_queue(tmp_path / "relay.sqlite3")
    try:
        with pytest.raises(StorageFull):
            queue.send_batch([{"pad": "x" * 8192}] * 50)
        assert queue.depth() == {"visible": 0, "in_flight": 0, "dead": 0}
    finally:
        database.close()


def test_other_sqlite_failures_keep_their_class_and_name_no_path(tmp_path: Path) -> None:
    """A database that cannot be opened (its folder is a file) is QueueError, not StorageFull, and says no path."""
    (tmp_path / "taken").write_text("not a folder")
    queue = SqliteWorkQueue(tmp_path / "taken" / "relay.sqlite3", "ingest")
    with pytest.raises(QueueError) as caught:
        queue.depth()
    assert not isinstance(caught.value, StorageFull) and caught.value.code == "os_error"
    assert str(tmp_path) not in caught.value.message and "/" not in caught.value.message


def test_blob_store_failures_name_the_key_and_no_path(tmp_path: Path) -> None:
    """A blob store whose folder cannot be made answers StorageError naming the key, not the file."""
    (tmp_path / "blobs").write_text("not a folder")
    store = FolderBlobStore(tmp_path / "blobs")
    with pytest.raises(StorageError) as caught:
        store.put_stream("jobs/job_x/output-0.mp4", [b"x"], content_type="video/mp4")
    assert not isinstance(caught.value, StorageFull) and caught.value.code == "write_failed"
    assert "jobs/job_x/output-0.mp4" in caught.value.message and str(tmp_path) not in caught.value.message


_FILE_SIZE_LIMITED = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    from handlers.adapters.local import FolderBlobStore

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))
    store = FolderBlobStore(Path(sys.argv[1]))
    try:
        store.put_stream("jobs/job_x/output-0.mp4", (b"v" * 65536 for _ in range(64)), content_type="video/mp4")
    except Exception as exc:
        cause = exc.__cause__
        print(json.dumps({"type": type(exc).__name__, "code": getattr(exc, "code", None), "message": str(exc),
                          "errno": getattr(cause, "errno", None), "head": store.head("jobs/job_x/output-0.mp4")}))
    else:
        print(json.dumps({"type": None}))
""")


def test_a_blob_write_past_the_file_size_limit_is_storage_full_and_leaves_nothing(tmp_path: Path) -> None:
    """EFBIG while streaming a result in leaves as StorageFull naming no path; no object, no temp file remains."""
    root = tmp_path / "blobs"
    child = subprocess.run([sys.executable, "-c", _FILE_SIZE_LIMITED, str(root)], capture_output=True,
                           text=True, timeout=60, check=True)
    report = json.loads(child.stdout)
    assert (report["type"], report["code"], report["head"]) == ("StorageFull", "storage_full", None)
    assert report["errno"] == errno.EFBIG  # the limit really was what stopped the write
    assert "out of space" in report["message"] and str(tmp_path) not in report["message"]
    assert [p.name for p in root.rglob("*") if p.is_file()] == []
