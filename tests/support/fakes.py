"""Fakes written as real code: a provider that keeps tasks in memory and can misbehave."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handlers.app.relay import Relay
from handlers.app.settings import Settings
from handlers.app.wiring import build_relay
from handlers.base.errors import ProviderRejected, UnknownOutcome
from handlers.provider.evolink.task import Task, new_task_id


@dataclass
class FakeProvider:
    """EvoLink in memory. ``script`` decides what each create does; ``complete`` finishes tasks."""

    results: list[str] = field(default_factory=lambda: ["https://cdn.example/video.mp4"])
    create_error: Exception | None = None
    lose_response: bool = False
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    creates: list[Mapping[str, Any]] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create_task(self, body: Mapping[str, Any], *, idempotency_key: str) -> Task:
        with self.lock:
            self.creates.append(dict(body))
            if self.create_error is not None:
                raise self.create_error
            task_id = new_task_id(time.time())
            self.tasks[task_id] = {"id": task_id, "status": "pending", "progress": 0,
                                   "model": body["model"], "task_info": {"estimated_time": 60},
                                   "usage": {"credits_reserved": 30}, "callback_url": body.get("callback_url")}
        if self.lose_response:
            raise UnknownOutcome("read timeout after sending")
        return Task.from_json(self.tasks[task_id])

    def get_task(self, task_id: str) -> Task:
        self.reads.append(task_id)
        if task_id not in self.tasks:
            raise ProviderRejected("not found", status=404, code="task_not_found")
        return Task.from_json(self.tasks[task_id])

    def finish(self, task_id: str, status: str = "completed", error: dict[str, Any] | None = None) -> None:
        task = self.tasks[task_id]
        task.update(status=status, progress=100 if status == "completed" else 0)
        if status == "completed":
            task["results"] = list(self.results)
        if error:
            task["error"] = error

    def only_task(self) -> str:
        [task_id] = self.tasks
        return task_id


class Clock:
    """Time that moves only when told. Call it (or ``now()``) for the time; ``advance`` (alias
    ``sleep``) moves it, so code given ``clock`` and ``sleep`` never waits."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.current = now

    def __call__(self) -> float:
        return self.current

    def now(self) -> float:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += seconds

    sleep = advance


def local_relay(tmp_path: Path, provider: FakeProvider, clock: Callable[[], float] | None = None,
                **env: str) -> Relay:
    settings = Settings.from_env({"RELAY_DATA_DIR": str(tmp_path / "relay"),
                                  "RELAY_CALLBACK_SECRET": "k1:" + "s" * 32, "RELAY_API_KEYS": "key-1", **env})
    return build_relay(settings, provider=provider, clock=clock or time.time)


def drain(relay: Relay) -> int:
    """Run the relay's ingest queue until it is empty, in this thread; how many messages were handled."""
    from handlers.app.runtime import run_worker_once

    total = 0
    while count := run_worker_once(relay, relay.ingest_queue, worker="test", wait=0):
        total += count
    return total
