"""The budget ledger as three SQLite tables, in the same file as the jobs.

* ``budget_holds``: one row per job that held credits (``job_id`` is the key), with its tenant,
  period, the credits held and, once settled, the credits spent (``state`` ``held`` → ``settled``);
* ``budget_totals``: one row per tenant and period (``held``, ``spent``, ``jobs``), keyed
  ``(period, tenant)`` so that :meth:`SqliteBudgetLedger.usages` reads one key range;
* ``budgets``: the budgets set at run time, by tenant.

Amounts are integers of millionths of a credit (``*_micro`` columns), so sums never drift
the way floating point does: a hold settled to ``0`` leaves exactly ``0``. A hold reads the
totals, compares and writes the hold and the totals inside one ``BEGIN IMMEDIATE``
transaction: SQLite's write lock makes it atomic across threads and processes, so concurrent
holds never pass the budget together. A settle moves the hold's credits from ``held`` to
``spent`` in one transaction too, only while the hold is still ``held``.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from handlers.adapters.local.sqlite import SqliteDatabase
from handlers.base.errors import StorageError
from handlers.domain.budgets import Budget, Per, Usage

__all__ = ["MICRO", "SCHEMA", "SqliteBudgetLedger", "micro"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_holds (
    job_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    period TEXT NOT NULL,
    credits_micro INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('held', 'settled')),
    spent_micro INTEGER,
    held_at REAL NOT NULL,
    settled_at REAL
);
CREATE TABLE IF NOT EXISTS budget_totals (
    period TEXT NOT NULL,
    tenant TEXT NOT NULL,
    held_micro INTEGER NOT NULL DEFAULT 0,
    spent_micro INTEGER NOT NULL DEFAULT 0,
    jobs INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (period, tenant)
);
CREATE TABLE IF NOT EXISTS budgets (
    tenant TEXT PRIMARY KEY,
    credits REAL NOT NULL,
    per TEXT NOT NULL,
    set_at REAL NOT NULL
);
"""
MICRO = 1_000_000
_TOTALS = "SELECT held_micro, spent_micro, jobs FROM budget_totals WHERE period = ? AND tenant = ?"


def micro(credits: float, what: str = "credits") -> int:
    """``credits`` in millionths of a credit; a negative, infinite or NaN amount is a ``ValueError`` naming ``what``."""
    if not math.isfinite(credits) or credits < 0:
        raise ValueError(f"{what} must be a finite number of credits, 0 or more, got {credits!r}")
    return round(credits * MICRO)


class SqliteBudgetLedger:
    """:class:`~handlers.ports.BudgetLedger` in the SQLite file ``path``; ``clock`` stamps each write."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._database = SqliteDatabase(path, schema=SCHEMA, error=StorageError)
        self._clock = clock

    def hold(self, tenant: str, period: str, job_id: str, credits: float, *, limit: float | None) -> bool:
        """Read the totals, compare and write, all under the write lock (``BEGIN IMMEDIATE``)."""
        amount = micro(credits)
        ceiling = None if limit is None else micro(limit, "limit")
        with self._database.transaction() as connection:
            stored = connection.execute("SELECT tenant, period FROM budget_holds WHERE job_id = ?",
                                        (job_id,)).fetchone()
            if stored is not None:
                return True
            held, spent, _ = _totals(connection, tenant, period)
            if ceiling is not None and held + spent + amount > ceiling:
                return False
            connection.execute(
                "INSERT INTO budget_holds (job_id, tenant, period, credits_micro, state, held_at)"
                " VALUES (?, ?, ?, ?, 'held', ?)", (job_id, tenant, period, amount, self._clock()))
            connection.execute(
                "INSERT INTO budget_totals (period, tenant, held_micro, jobs) VALUES (?, ?, ?, 1)"
                " ON CONFLICT (period, tenant) DO UPDATE SET held_micro = held_micro + excluded.held_micro,"
                " jobs = jobs + 1", (period, tenant, amount))
            return True

    def settle(self, tenant: str, period: str, job_id: str, credits: float, *, held: float | None = None) -> None:
        """Mark the hold settled and move its credits from ``held`` to ``spent``, in one transaction.

        The totals row is the one the hold was taken against (its stored tenant and period)."""
        spent = micro(credits)
        with self._database.transaction() as connection:
            stored = connection.execute(
                "SELECT tenant, period, credits_micro FROM budget_holds WHERE job_id = ? AND state = 'held'",
                (job_id,)).fetchone()
            if stored is None:
                return
            held_tenant, held_period, held = stored
            connection.execute(
                "UPDATE budget_holds SET state = 'settled', spent_micro = ?, settled_at = ? WHERE job_id = ?",
                (spent, self._clock(), job_id))
            connection.execute(
                "UPDATE budget_totals SET held_micro = held_micro - ?, spent_micro = spent_micro + ?"
                " WHERE period = ? AND tenant = ?", (held, spent, held_period, held_tenant))

    def usage(self, tenant: str, period: str) -> Usage:
        with self._database.translated():
            return _usage(self._database.connection(), tenant, period)

    def usages(self, period: str) -> list[Usage]:
        """One range of the ``(period, tenant)`` key, in tenant order."""
        with self._database.translated():
            rows = self._database.connection().execute(
                "SELECT tenant, held_micro, spent_micro, jobs FROM budget_totals WHERE period = ? ORDER BY tenant",
                (period,)).fetchall()
        return [Usage(tenant, period, held / MICRO, spent / MICRO, jobs) for tenant, held, spent, jobs in rows]

    def set_budget(self, tenant: str, budget: Budget | None) -> None:
        with self._database.translated():
            connection = self._database.connection()
            if budget is None:
                connection.execute("DELETE FROM budgets WHERE tenant = ?", (tenant,))
                return
            micro(budget.credits, "budget")
            connection.execute("INSERT OR REPLACE INTO budgets (tenant, credits, per, set_at) VALUES (?, ?, ?, ?)",
                               (tenant, budget.credits, Per(budget.per).value, self._clock()))

    def budgets(self) -> dict[str, Budget]:
        with self._database.translated():
            rows = self._database.connection().execute(
                "SELECT tenant, credits, per FROM budgets ORDER BY tenant").fetchall()
        return {tenant: Budget(float(credits), Per(per)) for tenant, credits, per in rows}

    def close(self) -> None:
        self._database.close()


def _totals(connection: sqlite3.Connection, tenant: str, period: str) -> tuple[int, int, int]:
    """``(held, spent, jobs)`` of the tenant in the period, in millionths; zeros if it has no row."""
    row = connection.execute(_TOTALS, (period, tenant)).fetchone()
    return (0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))


def _usage(connection: sqlite3.Connection, tenant: str, period: str) -> Usage:
    held, spent, jobs = _totals(connection, tenant, period)
    return Usage(tenant, period, held / MICRO, spent / MICRO, jobs)
