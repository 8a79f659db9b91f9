"""JobStore contract, retention: ``purge_finished`` deletes the final jobs that finished before a time, and
only those; a dry run finds the same and deletes nothing; ``compact`` gives space back."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from handlers.adapters.local import SqliteJobStore
from handlers.adapters.local.jobs import FINISHED_QUERY
from handlers.base.errors import NotFound
from handlers.domain.jobs import Job, JobStatus
from handlers.ports import JobStore, Removed

T0 = 1_700_000_000.0
DAY = 86_400.0


def finished(job_id: str, at: float, *, status: JobStatus = JobStatus.PUBLISHED, check_at: float | None = None,
             created_at: float | None = None) -> Job:
    """A job that ended at ``at`` (created a minute before, unless told), in ``status``."""
    created = at - 60 if created_at is None else created_at
    return Job(id=job_id, request={"prompt": f"a cat ({job_id})"}, fingerprint="f" * 64, created_at=created,
               updated_at=at, status=status, finished_at=at, check_at=check_at)


def open_job(job_id: str, created_at: float) -> Job:
    return Job(id=job_id, request={"prompt": "a dog"}, fingerprint="f" * 64, created_at=created_at,
               updated_at=created_at, status=JobStatus.PROCESSING, check_at=created_at + 600)


def stored(store: JobStore, *jobs: Job) -> None:
    for job in jobs:
        store.create(job)


def remaining(store: JobStore, *job_ids: str) -> set[str]:
    return store.existing(job_ids)


def record_bytes(job: Job) -> int:
    return len(json.dumps(job.to_record(), separators=(",", ":"), ensure_ascii=False).encode())


def test_purge_finished_deletes_only_final_jobs_that_finished_before_the_time(job_store: JobStore) -> None:
    stored(job_store, finished("job_old_published", T0), finished("job_old_failed", T0 + 1, status=JobStatus.FAILED),
           finished("job_recent", T0 + 2 * DAY), open_job("job_open", T0 - DAY),
           finished("job_publishing", T0, status=JobStatus.STORED, check_at=T0))
    removed = job_store.purge_finished(T0 + DAY)
    assert removed.count == 2
    assert remaining(job_store, "job_old_published", "job_old_failed", "job_recent", "job_open",
                     "job_publishing") == {"job_recent", "job_open", "job_publishing"}
    with pytest.raises(NotFound):
        job_store.get("job_old_published")


@pytest.mark.parametrize("status", [JobStatus.PUBLISHED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.REJECTED,
                                    JobStatus.EXPIRED])
def test_every_final_status_is_purged(job_store: JobStore, status: JobStatus) -> None:
    stored(job_store, finished("job_a", T0, status=status))
    assert job_store.purge_finished(T0 + 1).count == 1
    assert remaining(job_store, "job_a") == set()


def test_a_job_created_long_ago_that_finished_after_the_time_is_kept(job_store: JobStore) -> None:
    stored(job_store, finished("job_slow", T0 + DAY, created_at=T0 - 30 * DAY))
    assert job_store.purge_finished(T0) == Removed()
    assert remaining(job_store, "job_slow") == {"job_slow"}


def test_a_job_that_became_final_by_an_update_is_purged(job_store: JobStore) -> None:
    job = job_store.create(open_job("job_a", T0))
    job_store.update(replace(job, status=JobStatus.FAILED, finished_at=T0 + 10, updated_at=T0 + 10, check_at=None))
    assert job_store.purge_finished(T0 + 5).count == 0
    assert job_store.purge_finished(T0 + 11).count == 1


def test_purge_reports_the_bytes_of_the_records_it_deleted(job_store: JobStore) -> None:
    jobs = [finished(f"job_{n}", T0 + n) for n in range(3)]
    stored(job_store, *jobs)
    assert job_store.purge_finished(T0 + 10) == Removed(3, sum(record_bytes(job) for job in jobs))


def test_a_dry_run_finds_what_a_purge_deletes_and_deletes_nothing(job_store: JobStore) -> None:
    stored(job_store, *(finished(f"job_{n}", T0 + n) for n in range(4)), finished("job_recent", T0 + DAY))
    ids = [f"job_{n}" for n in range(4)]
    dry = job_store.purge_finished(T0 + 100, dry_run=True)
    assert remaining(job_store, *ids) == set(ids)
    assert job_store.purge_finished(T0 + 100) == dry
    assert dry.count == 4


def test_purge_stops_at_the_limit_and_the_next_call_takes_the_rest(job_store: JobStore) -> None:
    stored(job_store, *(finished(f"job_{n}", T0 + n) for n in range(5)))
    assert job_store.purge_finished(T0 + 100, limit=3).count == 3
    assert job_store.purge_finished(T0 + 100, limit=3).count == 2
    assert job_store.purge_finished(T0 + 100, limit=3).count == 0


def test_compact_answers_a_byte_count(job_store: JobStore) -> None:
    stored(job_store, finished("job_a", T0))
    job_store.purge_finished(T0 + 1)
    assert job_store.compact() >= 0


# --- local only: the index, and files from before the column -----------------------------------


def test_the_local_purge_reads_the_finished_index(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    store.create(finished("job_a", T0))
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        plan = " ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + FINISHED_QUERY, (T0, 10)))
    store.close()
    assert "USING INDEX jobs_finished" in plan


def test_a_file_from_before_retention_gets_its_finished_jobs_found(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    old, running = finished("job_old", T0), open_job("job_open", T0 - DAY)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, check_at REAL, created_at REAL "
                   "NOT NULL, version INTEGER NOT NULL, written_at REAL NOT NULL, record TEXT NOT NULL, tenant TEXT "
                   "NOT NULL DEFAULT 'default')")
        db.executemany("INSERT INTO jobs VALUES (?, ?, ?, ?, 0, ?, ?, 'default')",
                       [(job.id, job.status.value, job.check_at, job.created_at, job.updated_at,
                         json.dumps(job.to_record())) for job in (old, running)])
    db.close()
    store = SqliteJobStore(path)
    try:
        assert store.purge_finished(T0 + 1).count == 1
        assert store.existing(["job_old", "job_open"]) == {"job_open"}
    finally:
        store.close()
