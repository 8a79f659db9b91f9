"""JobStore contract: idempotent create, conditional updates, newest-first paging, capped counts,
the due index, and the records of revoked dashboard sessions."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from handlers.adapters.local import SqliteJobStore
from handlers.adapters.local.jobs import COUNT_QUERY, DUE_QUERY
from handlers.base.errors import Conflict, InvalidRequest, NotFound
from handlers.domain.jobs import Job, JobStatus
from handlers.ports import JobStore

T0 = 1_700_000_000.0


def make_job(job_id: str, *, created_at: float = T0, status: JobStatus = JobStatus.ACCEPTED,
             check_at: float | None = None, tenant: str = "default") -> Job:
    return Job(id=job_id, request={"prompt": f"a cat ({job_id})"}, fingerprint="f" * 64,
               created_at=created_at, updated_at=created_at, status=status, check_at=check_at,
               metadata={"caller": "tests"}, tenant=tenant)


def ids(jobs: list[Job]) -> list[str]:
    return [job.id for job in jobs]


def test_create_stores_the_job_and_returns_it(job_store: JobStore) -> None:
    job = make_job("job_a")
    assert job_store.create(job) == job
    assert job_store.get("job_a") == job


def test_create_is_idempotent_and_keeps_the_first_job(job_store: JobStore) -> None:
    first = job_store.create(make_job("job_a"))
    again = job_store.create(replace(make_job("job_a"), request={"prompt": "something else"}))
    assert again == first
    assert job_store.get("job_a").request == {"prompt": "a cat (job_a)"}


def test_get_of_a_missing_job_raises_not_found(job_store: JobStore) -> None:
    with pytest.raises(NotFound, match="job_missing"):
        job_store.get("job_missing")


def test_existing_names_only_the_stored_jobs_among_the_ids(job_store: JobStore) -> None:
    assert job_store.existing(["job_a"]) == set()
    job_store.create(make_job("job_a"))
    job_store.create(make_job("job_c"))
    assert job_store.existing(["job_a", "job_b", "job_c", "job_a"]) == {"job_a", "job_c"}
    assert job_store.existing([]) == set()


def test_existing_looks_up_more_ids_than_one_request_takes(job_store: JobStore) -> None:
    for n in range(3):
        job_store.create(make_job(f"job_{n}"))
    asked = [f"job_{n}" for n in range(750)]
    assert job_store.existing(asked) == {"job_0", "job_1", "job_2"}


def test_update_writes_the_job_and_bumps_the_version(job_store: JobStore) -> None:
    job = job_store.create(make_job("job_a"))
    updated = job_store.update(replace(job, updated_at=T0 + 5, status=JobStatus.SUBMITTED, task_id="task-1"))
    assert (updated.version, updated.status, updated.task_id) == (
        job.version + 1, JobStatus.SUBMITTED, "task-1")
    assert job_store.get("job_a") == updated
    assert job_store.update(replace(updated, updated_at=T0 + 6, progress=50)).version == job.version + 2


def test_update_from_a_stale_version_raises_conflict(job_store: JobStore) -> None:
    job = job_store.create(make_job("job_a"))
    job_store.update(replace(job, updated_at=T0 + 1, progress=10))
    with pytest.raises(Conflict, match="job_a"):
        job_store.update(replace(job, updated_at=T0 + 2, progress=20))
    assert job_store.get("job_a").progress == 10


def test_update_of_a_missing_job_raises_not_found(job_store: JobStore) -> None:
    with pytest.raises(NotFound, match="job_ghost"):
        job_store.update(make_job("job_ghost"))


def test_page_walks_newest_first_across_three_pages(job_store: JobStore) -> None:
    for n in range(7):
        job_store.create(make_job(f"job_{n}", created_at=T0 + n))
    first, cursor = job_store.page(limit=3)
    second, cursor2 = job_store.page(limit=3, cursor=cursor)
    third, end = job_store.page(limit=3, cursor=cursor2)
    assert [ids(first), ids(second), ids(third)] == [
        ["job_6", "job_5", "job_4"], ["job_3", "job_2", "job_1"], ["job_0"]]
    assert None not in (cursor, cursor2)
    assert end is None


def test_page_breaks_created_at_ties_by_id_without_skipping_or_repeating(job_store: JobStore) -> None:
    for n in range(5):
        job_store.create(make_job(f"job_{n}", created_at=T0))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        jobs, cursor = job_store.page(limit=2, cursor=cursor)
        seen += ids(jobs)
        if cursor is None:
            break
    assert seen == ["job_4", "job_3", "job_2", "job_1", "job_0"]


def test_page_cursor_is_stable_when_newer_jobs_arrive(job_store: JobStore) -> None:
    for n in range(4):
        job_store.create(make_job(f"job_{n}", created_at=T0 + n))
    _, cursor = job_store.page(limit=2)
    job_store.create(make_job("job_new", created_at=T0 + 100))
    rest, end = job_store.page(limit=2, cursor=cursor)
    assert (ids(rest), end) == (["job_1", "job_0"], None)


def test_page_filters_by_status(job_store: JobStore) -> None:
    for n in range(6):
        status = JobStatus.FAILED if n % 2 else JobStatus.ACCEPTED
        job_store.create(make_job(f"job_{n}", created_at=T0 + n, status=status))
    failed, cursor = job_store.page(status=JobStatus.FAILED, limit=2)
    rest, end = job_store.page(status=JobStatus.FAILED, limit=2, cursor=cursor)
    assert (ids(failed), ids(rest), end) == (["job_5", "job_3"], ["job_1"], None)


def test_page_refuses_a_cursor_it_did_not_give_out(job_store: JobStore) -> None:
    with pytest.raises(InvalidRequest, match="cursor"):
        job_store.page(cursor="not-a-cursor!")


def test_due_returns_oldest_check_at_first_skipping_unset_and_future(job_store: JobStore) -> None:
    job_store.create(make_job("job_late", check_at=T0 + 30))
    job_store.create(make_job("job_never"))
    job_store.create(make_job("job_future", check_at=T0 + 61))
    job_store.create(make_job("job_early", check_at=T0 + 10))
    job_store.create(make_job("job_exact", check_at=T0 + 60))
    assert ids(job_store.due(T0 + 60)) == ["job_early", "job_late", "job_exact"]
    assert ids(job_store.due(T0 + 60, limit=2)) == ["job_early", "job_late"]


def test_due_follows_updates_of_check_at(job_store: JobStore) -> None:
    job = job_store.create(make_job("job_a", check_at=T0))
    job_store.update(replace(job, updated_at=T0 + 1, status=JobStatus.PUBLISHED, check_at=None))
    assert job_store.due(T0 + 1000) == []


def test_concurrent_updates_from_one_version_have_exactly_one_winner(job_store: JobStore) -> None:
    job = job_store.create(make_job("job_a"))
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def racer(n: int) -> None:
        barrier.wait()
        try:
            job_store.update(replace(job, updated_at=T0 + 1, progress=n))
            outcomes.append("won")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
    assert job_store.get("job_a").version == job.version + 1


def test_local_due_reads_the_check_at_index_not_the_table(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    store.create(make_job("job_a", check_at=T0))
    store.close()
    with sqlite3.connect(tmp_path / "jobs.db") as connection:
        plan = [row[-1] for row in connection.execute(f"EXPLAIN QUERY PLAN {DUE_QUERY}", (T0, 10))]
    connection.close()
    assert any("USING INDEX jobs_check_at" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


def test_count_counts_the_jobs_of_one_status(job_store: JobStore) -> None:
    for n in range(5):
        job_store.create(make_job(f"job_{n}", created_at=T0 + n, status=JobStatus.FAILED if n < 3 else
                                  JobStatus.ACCEPTED))
    assert job_store.count(JobStatus.FAILED, 100) == 3
    assert job_store.count(JobStatus.ACCEPTED, 100) == 2
    assert job_store.count(JobStatus.PUBLISHED, 100) == 0


def test_count_stops_at_the_cap(job_store: JobStore) -> None:
    for n in range(7):
        job_store.create(make_job(f"job_{n}", created_at=T0 + n))
    assert [job_store.count(JobStatus.ACCEPTED, cap) for cap in (1, 3, 6, 7, 8, 1000)] == [1, 3, 6, 7, 7, 7]
    assert job_store.count(JobStatus.ACCEPTED, 0) == 0


def test_count_follows_status_changes(job_store: JobStore) -> None:
    job = job_store.create(make_job("job_a"))
    job_store.update(replace(job, updated_at=T0 + 1, status=JobStatus.PUBLISHED))
    assert (job_store.count(JobStatus.ACCEPTED, 10), job_store.count(JobStatus.PUBLISHED, 10)) == (0, 1)


def test_a_revoked_session_stays_revoked_until_its_expiry(job_store: JobStore) -> None:
    assert job_store.session_revoked("s-1") is False
    job_store.revoke_session("s-1", time.time() + 3600)
    assert job_store.session_revoked("s-1") is True
    assert job_store.session_revoked("s-2") is False


def test_a_revocation_past_its_expiry_no_longer_counts(job_store: JobStore) -> None:
    job_store.revoke_session("s-old", time.time() - 5)
    assert job_store.session_revoked("s-old") is False


def test_a_revocation_is_never_a_job(job_store: JobStore) -> None:
    """The records share the store with the jobs but never show up as one."""
    job_store.create(make_job("job_a"))
    job_store.revoke_session("s-1", time.time() + 3600)
    jobs, _ = job_store.page(limit=10)
    assert ids(jobs) == ["job_a"]
    assert job_store.existing(["job_a", "s-1", "session#s-1"]) == {"job_a"}
    for name in ("s-1", "session#s-1"):
        with pytest.raises(NotFound):
            job_store.get(name)


def test_local_count_reads_the_status_index_not_the_table(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    store.create(make_job("job_a"))
    store.close()
    with sqlite3.connect(tmp_path / "jobs.db") as connection:
        plan = [row[-1] for row in connection.execute(f"EXPLAIN QUERY PLAN {COUNT_QUERY}", ("accepted", 10))]
    connection.close()
    assert any("USING COVERING INDEX jobs_status_created" in step for step in plan), plan


def test_local_revocation_drops_the_records_of_expired_sessions(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    store.revoke_session("s-old", time.time() - 5)
    store.revoke_session("s-new", time.time() + 3600)
    store.close()
    with sqlite3.connect(tmp_path / "jobs.db") as connection:
        rows = [row[0] for row in connection.execute("SELECT id FROM revoked_sessions")]
    connection.close()
    assert rows == ["s-new"]


def _two_tenants(job_store: JobStore) -> None:
    for n in range(6):
        tenant, status = ("acme" if n % 2 else "beta"), (JobStatus.QUEUED if n < 4 else JobStatus.ACCEPTED)
        job_store.create(make_job(f"job_{n}", created_at=T0 + n, status=status, tenant=tenant))


def test_page_of_a_tenant_shows_only_its_jobs_newest_first_across_pages(job_store: JobStore) -> None:
    _two_tenants(job_store)
    first, cursor = job_store.page(tenant="acme", limit=2)
    rest, end = job_store.page(tenant="acme", limit=2, cursor=cursor)
    assert (ids(first), ids(rest), end) == (["job_5", "job_3"], ["job_1"], None)
    assert {job.tenant for job in first + rest} == {"acme"}


def test_page_of_a_tenant_and_a_status_filters_by_both(job_store: JobStore) -> None:
    _two_tenants(job_store)
    jobs, cursor = job_store.page(tenant="acme", status=JobStatus.QUEUED, limit=1)
    more, end = job_store.page(tenant="acme", status=JobStatus.QUEUED, limit=1, cursor=cursor)
    assert (ids(jobs), ids(more), end) == (["job_3"], ["job_1"], None)


def test_count_of_a_tenant_counts_only_its_jobs_of_the_status(job_store: JobStore) -> None:
    _two_tenants(job_store)
    assert job_store.count(JobStatus.QUEUED, 10, tenant="acme") == 2
    assert job_store.count(JobStatus.QUEUED, 10, tenant="beta") == 2
    assert job_store.count(JobStatus.QUEUED, 1, tenant="beta") == 1
    assert job_store.count(JobStatus.QUEUED, 10, tenant="nobody") == 0
    assert job_store.count(JobStatus.QUEUED, 10) == 4


def test_queued_lists_the_queued_jobs_of_every_tenant_oldest_first(job_store: JobStore) -> None:
    _two_tenants(job_store)
    assert ids(job_store.queued()) == ["job_0", "job_1", "job_2", "job_3"]
    assert ids(job_store.queued(limit=2)) == ["job_0", "job_1"]


def test_a_job_keeps_its_tenant(job_store: JobStore) -> None:
    job_store.create(make_job("job_t", tenant="acme"))
    assert job_store.get("job_t").tenant == "acme"


def test_local_store_gives_a_file_from_before_tenants_its_tenant_column(tmp_path: Path) -> None:
    """A jobs table without the column (an older version's file) is migrated when opened: old jobs are
    the tenant ``default``'s and tenant pages work."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, check_at REAL, created_at REAL"
                    " NOT NULL, version INTEGER NOT NULL, written_at REAL NOT NULL, record TEXT NOT NULL)")
        job = make_job("job_old")
        record = {k: v for k, v in job.to_record().items() if k != "tenant"}
        old.execute("INSERT INTO jobs VALUES (?, ?, NULL, ?, 0, ?, ?)",
                    (job.id, job.status.value, T0, T0, json.dumps(record)))
    old.close()
    store = SqliteJobStore(path)
    try:
        assert ids(store.page(tenant="default")[0]) == ["job_old"]
        assert store.get("job_old").tenant == "default"
    finally:
        store.close()
