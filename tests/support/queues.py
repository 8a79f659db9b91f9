"""Draining one work queue from several threads or processes at once, for the race tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handlers.ports import WorkQueue
from tests.support.processes import race_in_processes


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
    return race_in_processes(_drain_in_process, [(recipe,)] * count, timeout=60)
