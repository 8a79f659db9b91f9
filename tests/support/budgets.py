"""Budget ledgers built from picklable recipes, and holds raced from threads and from spawned processes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from handlers.adapters.aws import AwsNames, aws_clients
from handlers.adapters.aws.budgets import DynamoBudgetLedger
from handlers.adapters.local.budgets import SqliteBudgetLedger
from handlers.ports import BudgetLedger
from tests.support.processes import race_in_processes

__all__ = ["LedgerRecipe", "dynamo_ledger", "hold_in_processes", "hold_in_threads", "sqlite_ledger"]

LedgerRecipe = Callable[[], BudgetLedger]


def sqlite_ledger(path: Path) -> SqliteBudgetLedger:
    return SqliteBudgetLedger(path)


def dynamo_ledger(endpoint_url: str, table: str) -> DynamoBudgetLedger:
    """A ledger on ``table`` with its own client (a spawned process cannot share its parent's)."""
    return DynamoBudgetLedger(aws_clients(AwsNames(), endpoint_url=endpoint_url).dynamodb, table)


def _hold(ledger: BudgetLedger, tenant: str, period: str, job_id: str, credits: float, limit: float,
          start: threading.Barrier) -> bool:
    start.wait()
    return ledger.hold(tenant, period, job_id, credits, limit=limit)


def hold_in_threads(ledger: BudgetLedger, tenant: str, period: str, job_ids: list[str], credits: float,
                    limit: float, *, start: Any = None) -> list[str]:
    """One thread per job id, released together (and only once ``start``, a barrier shared with other
    processes, is passed too), each holding ``credits``; the ids whose hold was taken."""
    ready = threading.Barrier(len(job_ids), action=None if start is None else start.wait, timeout=60)
    with ThreadPoolExecutor(max_workers=len(job_ids)) as pool:
        taken = list(pool.map(lambda job_id: _hold(ledger, tenant, period, job_id, credits, limit, ready), job_ids))
    return [job_id for job_id, ok in zip(job_ids, taken, strict=True) if ok]


def _hold_in_process(recipe: LedgerRecipe, tenant: str, period: str, job_ids: list[str], credits: float,
                     limit: float, start: Any, results: Any) -> None:
    ledger = recipe()
    results.put(hold_in_threads(ledger, tenant, period, job_ids, credits, limit, start=start))
    closer = getattr(ledger, "close", None)
    if callable(closer):
        closer()


def hold_in_processes(recipe: LedgerRecipe, tenant: str, period: str, job_ids: list[str], credits: float,
                      limit: float, processes: int = 4) -> list[str]:
    """``processes`` spawned processes share out ``job_ids``; in each, one thread per id; all start together.

    Returns the ids whose hold was taken, from every process."""
    shares = [job_ids[n::processes] for n in range(processes)]
    per_process = race_in_processes(_hold_in_process, [(recipe, tenant, period, share, credits, limit)
                                                       for share in shares])
    return [job_id for taken in per_process for job_id in taken]
