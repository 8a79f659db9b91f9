"""Acquiring slots of one pool from many threads, and from several processes at once, for the race tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from handlers.ports import SlotPool
from tests.support.processes import race_in_processes

__all__ = ["AcquireRace", "acquire_in_processes", "acquire_in_threads"]


class AcquireRace:
    """One acquire per job id, all with the same ``now``, ``until`` and caps; tenants by ``tenant_of``."""

    def __init__(self, *, now: float, until: float, cap: int, tenant_cap: int | None,
                 tenants: int = 1) -> None:
        self.now, self.until, self.cap, self.tenant_cap, self.tenants = now, until, cap, tenant_cap, tenants

    def tenant_of(self, job_id: str) -> str:
        return f"tenant-{int(job_id.rsplit('_', 1)[1]) % self.tenants}"

    def run(self, pool: SlotPool, job_ids: list[str], start: Callable[[], Any]) -> list[str]:
        """Each job id in its own thread; all wait for ``start`` (and for each other), then acquire.
        The ids that got a slot."""
        ready = threading.Barrier(len(job_ids), action=start)

        def one(job_id: str) -> str | None:
            ready.wait(timeout=60)
            taken = pool.acquire(job_id, self.tenant_of(job_id), now=self.now, until=self.until,
                                 cap=self.cap, tenant_cap=self.tenant_cap)
            return job_id if taken else None

        with ThreadPoolExecutor(max_workers=len(job_ids)) as threads:
            return [job_id for job_id in threads.map(one, job_ids) if job_id is not None]


def acquire_in_threads(pool: SlotPool, race: AcquireRace, job_ids: list[str]) -> list[str]:
    return race.run(pool, job_ids, lambda: None)


def _in_process(recipe: Callable[[], SlotPool], race: AcquireRace, job_ids: list[str], barrier: Any,
                results: Any) -> None:
    pool = recipe()
    try:
        results.put(race.run(pool, job_ids, barrier.wait))
    finally:
        getattr(pool, "close", lambda: None)()


def acquire_in_processes(recipe: Callable[[], SlotPool], race: AcquireRace, job_ids: list[str],
                         processes: int = 4) -> list[str]:
    """``processes`` spawned processes, each building the pool from ``recipe`` (it must pickle) and racing
    its share of ``job_ids`` from threads, all starting together; the ids that got a slot."""
    shares = [job_ids[n::processes] for n in range(processes)]
    per_process = race_in_processes(_in_process, [(recipe, race, share) for share in shares])
    return [job_id for taken in per_process for job_id in taken]
