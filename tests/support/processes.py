"""Races across processes: spawned workers that start together and each report one result."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["race_in_processes"]


def race_in_processes(target: Callable[..., None], per_process: Sequence[tuple[Any, ...]],
                      timeout: float = 120.0) -> list[Any]:
    """One spawned process per entry of ``per_process``, running ``target(*args, barrier, results)``: each waits
    on the shared barrier so all start together and puts one result on ``results``; the results, one per
    process (in the order they came). ``target`` and its arguments must pickle."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(len(per_process), timeout=60), context.Queue()
    workers = [context.Process(target=target, args=(*args, barrier, results)) for args in per_process]
    for worker in workers:
        worker.start()
    reported = [results.get(timeout=timeout) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
        worker.close()
    results.close()
    results.join_thread()
    return reported
