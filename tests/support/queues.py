"""Draining one work queue from several threads or processes at once, for the race tests."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

from handlers.ports import WorkQueue


def drain(queue: WorkQueue, start: Callable[[], Any]) -> list[str]:
    """Wait for ``start``, then receive and ack until nothing is visible; the ids delivered here."""
    start()
    delivered: list[str] = []
    while messages := queue.receive(max_messages=5):
        for message in messages:
            delivered.append(message.id)
            queue.ack(message)
    return delivered


def _drain_in_process(recipe: Callable[[], WorkQueue], barrier: Any, results: Any) -> None:
    queue = recipe()
    try:
        results.put(drain(queue, barrier.wait))
    finally:
        getattr(queue, "close", lambda: None)()


def drain_in_processes(recipe: Callable[[], WorkQueue], count: int = 4) -> list[list[str]]:
    """``count`` spawned processes, each building the queue from ``recipe`` (it must pickle),
    start together and drain it; the ids each one got."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(count), context.Queue()
    workers = [context.Process(target=_drain_in_process, args=(recipe, barrier, results)) for _ in range(count)]
    for worker in workers:
        worker.start()
    per_worker = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
        worker.close()
    results.close()
    results.join_thread()
    return per_worker
