"""The job store as one SQLite table.

Each row keeps the searchable fields in columns (``status``, ``check_at``,
``created_at``, ``version``) beside the whole job as JSON (``record``). Writes are
conditional on ``version`` in a single ``UPDATE``, so two writers from the same
version never both win. ``page`` walks ``(created_at, id)`` newest first through the
``jobs_created`` index with an opaque keyset cursor; ``due`` reads the partial
``jobs_check_at`` index, never the whole table; ``count`` counts at most ``cap`` entries of
the ``jobs_status_created`` index. Each job's ``tenant`` is a column too, with its own
``(tenant, created_at, id)`` and ``(tenant, status, created_at, id)`` indexes, so a tenant's
page and counts read only its rows; a file from before tenants gets the column (every old job
is the tenant ``default``'s) when it is opened. Revoked dashboard sessions are rows of
``revoked_sessions`` (id and expiry); each revocation also deletes the expired ones.

A job that reached its final status with nothing left to check has ``finished_at`` (its
``finished_at``, else its ``updated_at``), in the partial ``jobs_finished`` index that
:meth:`SqliteJobStore.purge_finished` reads; a file from before the column gets it, filled in,
when it is opened.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

from handlers.adapters.local.sqlite import SqliteDatabase
from handlers.base.errors import Conflict, InvalidRequest, NotFound, StorageError, Violation
from handlers.domain.jobs import TERMINAL, Job, JobStatus
from handlers.ports import Removed

__all__ = ["COUNT_QUERY", "DUE_QUERY", "QUEUED_QUERY", "SCHEMA", "TENANT_COUNT_QUERY", "SqliteJobStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    check_at REAL,
    created_at REAL NOT NULL,
    version INTEGER NOT NULL,
    written_at REAL NOT NULL,
    record TEXT NOT NULL,
    tenant TEXT NOT NULL DEFAULT 'default',
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_check_at ON jobs (check_at, id) WHERE check_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, id);
CREATE INDEX IF NOT EXISTS jobs_status_created ON jobs (status, created_at, id);
CREATE TABLE IF NOT EXISTS revoked_sessions (
    id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_sessions_expiry ON revoked_sessions (expires_at);
"""
INDEX_DDL = """
CREATE INDEX IF NOT EXISTS jobs_tenant_created ON jobs (tenant, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_tenant_status_created ON jobs (tenant, status, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at, id) WHERE finished_at IS NOT NULL;
"""
FINISHED_BACKFILL = (
    "UPDATE jobs SET finished_at = COALESCE(json_extract(record, '$.finished_at'),"
    " json_extract(record, '$.updated_at')) WHERE status IN (SELECT value FROM json_each(?)) AND check_at IS NULL")
PURGE_BATCH = 500
FINISHED_QUERY = ("SELECT id, length(CAST(record AS BLOB)) FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?"
                  " ORDER BY finished_at, id LIMIT ?")
LOOKUP_BATCH = 500
DUE_QUERY = ("SELECT record FROM jobs WHERE check_at IS NOT NULL AND check_at <= ?"
             " ORDER BY check_at, id LIMIT ?")
COUNT_QUERY = "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE status = ? LIMIT ?)"
TENANT_COUNT_QUERY = "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE tenant = ? AND status = ? LIMIT ?)"
QUEUED_QUERY = "SELECT record FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT ?"


def _migrate(connection: sqlite3.Connection) -> None:
    """Give a file from before tenants its ``tenant`` column (old jobs are ``default``'s) and indexes, and one
    from before retention its ``finished_at`` column, filled in from the records of the finished jobs."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(jobs)")}
    if "tenant" not in columns:
        connection.execute("ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default'")
    if "finished_at" not in columns:
        connection.execute("ALTER TABLE jobs ADD COLUMN finished_at REAL")
        connection.execute(FINISHED_BACKFILL, (json.dumps(sorted(TERMINAL)),))
    connection.executescript(INDEX_DDL)


class SqliteJobStore:
    """:class:`~handlers.ports.JobStore` in a SQLite file; ``clock`` stamps ``written_at``."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._database = SqliteDatabase(path, schema=SCHEMA, error=StorageError, migrate=_migrate)
        self._clock = clock

    def create(self, job: Job) -> Job:
        with self._database.translated():
            connection = self._database.connection()
            connection.execute(
                "INSERT OR IGNORE INTO jobs (id, status, check_at, created_at, version, written_at, record, tenant,"
                " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.status.value, job.check_at, job.created_at, job.version, self._clock(),
                 _dump(job), job.tenant, _finished(job)))
        return self.get(job.id)

    def get(self, job_id: str) -> Job:
        with self._database.translated():
            row = self._database.connection().execute(
                "SELECT record FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        return _load(row)

    def existing(self, job_ids: Collection[str]) -> set[str]:
        """One ``SELECT id … WHERE id IN (…)`` per :data:`LOOKUP_BATCH` ids, on the primary key."""
        wanted = list(dict.fromkeys(job_ids))
        found: set[str] = set()
        with self._database.translated():
            connection = self._database.connection()
            for start in range(0, len(wanted), LOOKUP_BATCH):
                batch = wanted[start:start + LOOKUP_BATCH]
                marks = ",".join("?" * len(batch))
                found.update(row[0] for row in connection.execute(
                    f"SELECT id FROM jobs WHERE id IN ({marks})", batch))  # noqa: S608 - only placeholders
        return found

    def update(self, job: Job) -> Job:
        written = replace(job, version=job.version + 1)
        with self._database.translated():
            changed = self._database.connection().execute(
                "UPDATE jobs SET status = ?, check_at = ?, version = ?, written_at = ?, record = ?, finished_at = ?"
                " WHERE id = ? AND version = ?",
                (written.status.value, written.check_at, written.version, self._clock(), _dump(written),
                 _finished(written), job.id, job.version)).rowcount
        if changed == 0:
            raise self._why_unchanged(job)
        return written

    def page(self, *, status: JobStatus | None = None, tenant: str | None = None, limit: int = 50,
             cursor: str | None = None) -> tuple[list[Job], str | None]:
        """Newest first; the cursor is the ``(created_at, id)`` of the last job, base64-encoded."""
        where, params = _page_filter(status, tenant, cursor)
        with self._database.translated():
            rows = self._database.connection().execute(
                f"SELECT record FROM jobs {where} ORDER BY created_at DESC, id DESC LIMIT ?",  # noqa: S608
                (*params, max(limit, 1) + 1)).fetchall()
        jobs = [_load(row) for row in rows[:max(limit, 1)]]
        more = len(rows) > len(jobs)
        return jobs, (_encode_cursor(jobs[-1]) if more else None)

    def count(self, status: JobStatus, cap: int, *, tenant: str | None = None) -> int:
        """``COUNT`` over at most ``cap`` rows of the ``jobs_status_created`` (or tenant's) index."""
        if cap <= 0:
            return 0
        query, params = ((COUNT_QUERY, (JobStatus(status).value, cap)) if tenant is None
                         else (TENANT_COUNT_QUERY, (tenant, JobStatus(status).value, cap)))
        with self._database.translated():
            row = self._database.connection().execute(query, params).fetchone()
        return int(row[0])

    def queued(self, limit: int = 100) -> list[Job]:
        """The ``queued`` jobs, oldest first, from the ``jobs_status_created`` index."""
        with self._database.translated():
            rows = self._database.connection().execute(QUEUED_QUERY, (max(limit, 1),)).fetchall()
        return [_load(row) for row in rows]

    def revoke_session(self, session_id: str, until: float) -> None:
        """Insert the record and drop the ones whose session has expired anyway, in one transaction."""
        with self._database.transaction() as connection:
            connection.execute("INSERT OR REPLACE INTO revoked_sessions (id, expires_at) VALUES (?, ?)",
                               (session_id, until))
            connection.execute("DELETE FROM revoked_sessions WHERE expires_at <= ?", (self._clock(),))

    def session_revoked(self, session_id: str) -> bool:
        with self._database.translated():
            row = self._database.connection().execute(
                "SELECT 1 FROM revoked_sessions WHERE id = ? AND expires_at > ?",
                (session_id, self._clock())).fetchone()
        return row is not None

    def due(self, now: float, limit: int = 100) -> list[Job]:
        with self._database.translated():
            rows = self._database.connection().execute(DUE_QUERY, (now, limit)).fetchall()
        return [_load(row) for row in rows]

    def purge_finished(self, before: float, *, limit: int = 1000, dry_run: bool = False) -> Removed:
        """Read the ``jobs_finished`` index, oldest first; delete in transactions of :data:`PURGE_BATCH` jobs."""
        if dry_run:
            with self._database.translated():
                rows = self._database.connection().execute(FINISHED_QUERY, (before, max(limit, 0))).fetchall()
            return Removed(len(rows), sum(row[1] for row in rows))
        removed = Removed()
        while removed.count < limit:
            batch = self._purge_batch(before, min(PURGE_BATCH, limit - removed.count))
            removed = Removed(removed.count + batch.count, removed.bytes + batch.bytes)
            if batch.count < PURGE_BATCH:
                break
        return removed

    def compact(self) -> int:
        """``PRAGMA incremental_vacuum`` and a truncating checkpoint: the bytes the file and its log shrank by."""
        return self._database.compact()

    def close(self) -> None:
        self._database.close()

    def _purge_batch(self, before: float, limit: int) -> Removed:
        with self._database.transaction() as connection:
            rows = connection.execute(FINISHED_QUERY, (before, limit)).fetchall()
            connection.executemany("DELETE FROM jobs WHERE id = ?", [(row[0],) for row in rows])
        return Removed(len(rows), sum(row[1] for row in rows))

    def _why_unchanged(self, job: Job) -> NotFound | Conflict:
        with self._database.translated():
            row = self._database.connection().execute(
                "SELECT version FROM jobs WHERE id = ?", (job.id,)).fetchone()
        if row is None:
            return NotFound(f"no job {job.id!r}")
        return Conflict(f"job {job.id!r} is at version {row[0]}, not {job.version}")


def _finished(job: Job) -> float | None:
    """When ``job`` finished, once it is final with nothing left to check (else ``None``)."""
    if not job.terminal or job.check_at is not None:
        return None
    return job.finished_at if job.finished_at is not None else job.updated_at


def _dump(job: Job) -> str:
    return json.dumps(job.to_record(), separators=(",", ":"), ensure_ascii=False)


def _load(row: sqlite3.Row | tuple[Any, ...]) -> Job:
    return Job.from_record(json.loads(row[0]))


def _page_filter(status: JobStatus | None, tenant: str | None, cursor: str | None) -> tuple[str, tuple[Any, ...]]:
    terms: list[str] = []
    params: list[Any] = []
    if tenant is not None:
        terms.append("tenant = ?")
        params.append(tenant)
    if status is not None:
        terms.append("status = ?")
        params.append(JobStatus(status).value)
    if cursor is not None:
        terms.append("(created_at, id) < (?, ?)")
        params.extend(_decode_cursor(cursor))
    return ("WHERE " + " AND ".join(terms) if terms else ""), tuple(params)


def _encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at, job.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, job_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return float(created_at), str(job_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidRequest([Violation("cursor", "invalid_cursor", "not a cursor this store gave out")]
                             ) from exc
