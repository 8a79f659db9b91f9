"""The slot pool as one SQLite table, in a file of its own (``slots.sqlite3`` beside ``relay.sqlite3``).

The file is its own so that a submit's two lease writes (acquire, then renew to the job's deadline) do not
queue for the write lock of the file every job, queue and event write uses: in the same file they made the
p99 of a capped submit about 1.4-2x an uncapped one's. Leases an older version kept in the job store's file
are moved here when the pool opens (``legacy``).

A lease is a row of ``slot_leases``: the job id (the key), its tenant and ``until``. A lease
counts while ``until`` is after ``now``. ``acquire`` counts the unexpired leases (all, then the
tenant's, through the ``slot_leases_tenant`` index) and inserts in one ``BEGIN IMMEDIATE``
transaction, so SQLite's write lock lets one acquirer at a time decide: concurrent acquires, from
threads or processes, never pass a cap together. An expired lease stays (and ``expired`` lists
it, through the ``slot_leases_until`` index) until it is released or taken again, or until it is
``retention`` seconds past its end: then ``expired`` no longer lists it and the next acquire drops it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from handlers.adapters.local.sqlite import SqliteDatabase
from handlers.base.errors import StorageError
from handlers.ports import SlotLease

__all__ = ["RETENTION", "SCHEMA", "SqliteSlotPool"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS slot_leases (
    job_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    until REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS slot_leases_until ON slot_leases (until, job_id);
CREATE INDEX IF NOT EXISTS slot_leases_tenant ON slot_leases (tenant, until);
"""
RETENTION = 7 * 86_400.0


class SqliteSlotPool:
    """:class:`~handlers.ports.SlotPool` in the SQLite file ``path`` (the job store's file will do).

    ``retention``: how long past its end an unreleased lease stays listed by ``expired``.
    """

    def __init__(self, path: Path, *, retention: float = RETENTION, legacy: Path | None = None) -> None:
        self._database = SqliteDatabase(path, schema=SCHEMA, error=StorageError)
        self.retention = retention
        if legacy is not None and legacy != path and legacy.exists():
            self._adopt(legacy)

    def _adopt(self, legacy: Path) -> None:
        """Move the leases of ``legacy``'s ``slot_leases`` table (if it has one) into this file: copied first, then
        deleted there, so a crash between the two only copies them again (a lease already here is kept)."""
        with self._database.translated():
            connection = self._database.connection()
            connection.execute("ATTACH DATABASE ? AS legacy", (str(legacy),))
            try:
                found = connection.execute("SELECT 1 FROM legacy.sqlite_master WHERE type = 'table' AND "
                                           "name = 'slot_leases'").fetchone()
                if found is None:
                    return
                with self._database.transaction() as moving:
                    moving.execute("INSERT OR IGNORE INTO main.slot_leases (job_id, tenant, until) "
                                   "SELECT job_id, tenant, until FROM legacy.slot_leases")
                connection.execute("DELETE FROM legacy.slot_leases")
            finally:
                connection.execute("DETACH DATABASE legacy")

    def acquire(self, job_id: str, tenant: str, *, now: float, until: float, cap: int,
                tenant_cap: int | None) -> bool:
        with self._database.transaction() as connection:
            connection.execute("DELETE FROM slot_leases WHERE until <= ?", (now - self.retention,))
            held = connection.execute("SELECT until FROM slot_leases WHERE job_id = ? AND until > ?",
                                      (job_id, now)).fetchone()
            if held is not None:
                _extend(connection, job_id, until)
                return True
            if not _room(connection, tenant, now=now, cap=cap, tenant_cap=tenant_cap):
                return False
            connection.execute("INSERT OR REPLACE INTO slot_leases (job_id, tenant, until) VALUES (?, ?, ?)",
                               (job_id, tenant, until))
        return True

    def renew(self, job_id: str, *, now: float, until: float) -> bool:
        """Move ``until`` later (never earlier) while the lease is unexpired."""
        with self._database.transaction() as connection:
            held = connection.execute("SELECT 1 FROM slot_leases WHERE job_id = ? AND until > ?",
                                      (job_id, now)).fetchone()
            if held is not None:
                _extend(connection, job_id, until)
        return held is not None

    def release(self, job_id: str) -> None:
        with self._database.translated():
            self._database.connection().execute("DELETE FROM slot_leases WHERE job_id = ?", (job_id,))

    def leases(self, now: float) -> list[SlotLease]:
        return self._select("WHERE until > ? ORDER BY until, job_id", (now,))

    def expired(self, now: float, limit: int = 100) -> list[SlotLease]:
        return self._select("WHERE until <= ? AND until > ? ORDER BY until, job_id LIMIT ?",
                            (now, now - self.retention, max(limit, 0)))

    def close(self) -> None:
        self._database.close()

    def _select(self, clause: str, params: tuple[float | int, ...]) -> list[SlotLease]:
        with self._database.translated():
            rows = self._database.connection().execute(
                f"SELECT job_id, tenant, until FROM slot_leases {clause}", params).fetchall()  # noqa: S608
        return [SlotLease(job_id, tenant, float(until)) for job_id, tenant, until in rows]


def _extend(connection: sqlite3.Connection, job_id: str, until: float) -> None:
    connection.execute("UPDATE slot_leases SET until = MAX(until, ?) WHERE job_id = ?", (until, job_id))


def _room(connection: sqlite3.Connection, tenant: str, *, now: float, cap: int, tenant_cap: int | None) -> bool:
    """Whether fewer than ``cap`` leases, and fewer than ``tenant_cap`` of ``tenant``'s, are unexpired."""
    (total,) = connection.execute("SELECT COUNT(*) FROM slot_leases WHERE until > ?", (now,)).fetchone()
    if total >= cap:
        return False
    if tenant_cap is None:
        return True
    (mine,) = connection.execute("SELECT COUNT(*) FROM slot_leases WHERE tenant = ? AND until > ?",
                                 (tenant, now)).fetchone()
    return bool(mine < tenant_cap)
