"""Contract fixtures: every port's suite runs against each backend named in ``params``.

Each fixture looks its backend up in a table of builders keyed by backend name. To run
the suites against another backend (the AWS adapters against moto in server mode, say),
add a builder to each table and the name to the fixture's ``params``; a builder that
cannot honour a fake clock (SQS keeps its own time) should ``pytest.skip`` when handed one.
Queue builders return a *recipe*, a picklable zero-argument callable, so a test can build
the same queue again in another process.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from handlers.adapters.local import FolderBlobStore, SqliteEventBus, SqliteJobStore, SqliteWorkQueue
from handlers.ports import BlobStore, EventBus, JobStore, WorkQueue

QueueRecipe = Callable[[], WorkQueue]


class FakeClock:
    """Time that moves only when told: ``now()`` is the clock, ``advance`` (alias ``sleep``) moves it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.current = start

    def now(self) -> float:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += seconds

    sleep = advance


def _clocked(clock: FakeClock | None) -> dict[str, Any]:
    return {"clock": clock.now, "sleep": clock.sleep} if clock is not None else {}


def _local_queue(folder: Path, name: str, visibility_timeout: float, max_receives: int,
                 clock: FakeClock | None) -> QueueRecipe:
    return functools.partial(SqliteWorkQueue, folder / "queues.db", name,
                             visibility_timeout=visibility_timeout, max_receives=max_receives,
                             **_clocked(clock))


def _local_bus(folder: Path, subscribers: Mapping[str, Sequence[str]], visibility_timeout: float,
               clock: FakeClock | None) -> EventBus:
    return SqliteEventBus(folder / "events.db", subscribers, visibility_timeout=visibility_timeout,
                          **_clocked(clock))


def _local_blob_leftovers(store: FolderBlobStore) -> list[str]:
    """Files under the root that are neither objects nor their sidecars."""
    return sorted(os.path.relpath(os.path.join(folder, name), store.root)
                  for folder, _, names in os.walk(store.root) for name in names if name.startswith("."))


JOB_STORES: dict[str, Callable[[Path], JobStore]] = {
    "local": lambda folder: SqliteJobStore(folder / "jobs.db"),
}
BLOB_STORES: dict[str, Callable[[Path], BlobStore]] = {
    "local": lambda folder: FolderBlobStore(folder / "blobs"),
}
BLOB_LEFTOVERS: dict[type, Callable[[Any], list[str]]] = {
    FolderBlobStore: _local_blob_leftovers,
}
WORK_QUEUES: dict[str, Callable[[Path, str, float, int, FakeClock | None], QueueRecipe]] = {
    "local": _local_queue,
}
EVENT_BUSES: dict[str, Callable[[Path, Mapping[str, Sequence[str]], float, FakeClock | None], EventBus]] = {
    "local": _local_bus,
}


def close(adapter: object) -> None:
    """Release what an adapter opened (``close`` is not part of the ports)."""
    closer = getattr(adapter, "close", None)
    if callable(closer):
        closer()


def blob_leftovers(store: BlobStore) -> list[str]:
    """Partial writes a failed ``put_stream`` left behind (temp files, unfinished uploads)."""
    return BLOB_LEFTOVERS[type(store)](store)


class QueueFactory:
    """Builds work queues on one backend location; closes them all at teardown."""

    def __init__(self, build: Callable[[str, float, int, FakeClock | None], QueueRecipe]) -> None:
        self._build = build
        self._opened: list[WorkQueue] = []

    def recipe(self, name: str = "work", *, visibility_timeout: float = 30.0, max_receives: int = 5,
               clock: FakeClock | None = None) -> QueueRecipe:
        return self._build(name, visibility_timeout, max_receives, clock)

    def __call__(self, name: str = "work", *, visibility_timeout: float = 30.0, max_receives: int = 5,
                 clock: FakeClock | None = None) -> WorkQueue:
        queue = self.recipe(name, visibility_timeout=visibility_timeout, max_receives=max_receives,
                            clock=clock)()
        self._opened.append(queue)
        return queue

    def close(self) -> None:
        for queue in self._opened:
            close(queue)


class BusFactory:
    """Builds event buses on one backend location; closes them all at teardown."""

    def __init__(self, build: Callable[[Mapping[str, Sequence[str]], float, FakeClock | None], EventBus]
                 ) -> None:
        self._build = build
        self._opened: list[EventBus] = []

    def __call__(self, subscribers: Mapping[str, Sequence[str]], *, visibility_timeout: float = 30.0,
                 clock: FakeClock | None = None) -> EventBus:
        bus = self._build(subscribers, visibility_timeout, clock)
        self._opened.append(bus)
        return bus

    def close(self) -> None:
        for bus in self._opened:
            close(bus)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["local"])
def job_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    store = JOB_STORES[request.param](tmp_path)
    yield store
    close(store)


@pytest.fixture(params=["local"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    store = BLOB_STORES[request.param](tmp_path)
    yield store
    close(store)


@pytest.fixture(params=["local"])
def work_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QueueFactory]:
    factory = QueueFactory(functools.partial(WORK_QUEUES[request.param], tmp_path))
    yield factory
    factory.close()


@pytest.fixture(params=["local"])
def event_bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BusFactory]:
    factory = BusFactory(functools.partial(EVENT_BUSES[request.param], tmp_path))
    yield factory
    factory.close()
