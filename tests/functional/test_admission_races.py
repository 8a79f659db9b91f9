"""Two admitters racing for the same queued job (a worker woken by a freed slot, and the reconciler, in one process
or two): the one that loses must leave the winner's slot alone.

The race is played out step by step on local adapters with a fake provider: the losing admitter reads the queued
job and the slots before the winner writes (:func:`as_read_before`, real code over the real stores), then writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from handlers.app.relay import Relay
from handlers.domain.jobs import Job, JobStatus
from handlers.ports import JobStore, SlotLease, SlotPool
from handlers.usecases import ingest, submit
from handlers.usecases.submit import admit_waiting
from tests.support.fakes import Clock, FakeProvider, local_relay

REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4}


class StaleJobs:
    """The job store as an admitter read it before another one admitted ``job``: that job still queued. Writes
    go to the real store (and so conflict with the other admitter's)."""

    def __init__(self, store: JobStore, job: Job) -> None:
        self.store, self.job = store, job

    def get(self, job_id: str) -> Job:
        return self.job if job_id == self.job.id else self.store.get(job_id)

    def queued(self, limit: int) -> list[Job]:
        return [self.job]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class StaleSlots:
    """The slot pool as that admitter read it then (``leases``: what was held before); writes go to the real pool."""

    def __init__(self, pool: SlotPool, leases: list[SlotLease]) -> None:
        self.pool, self.held = pool, leases

    def leases(self, now: float) -> list[SlotLease]:
        return list(self.held)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)


@contextmanager
def as_read_before(relay: Relay, job: Job, leases: list[SlotLease]) -> Iterator[None]:
    """The relay, for the ``with`` block, seeing the job store and the slot pool as they were read earlier."""
    jobs, slots = relay.jobs, relay.slots
    relay.jobs, relay.slots = StaleJobs(jobs, job), StaleSlots(slots, leases)  # type: ignore[assignment]
    try:
        yield
    finally:
        relay.jobs, relay.slots = jobs, slots


@pytest.fixture
def one_slot(tmp_path: Path, provider: FakeProvider, clock: Clock) -> Iterator[Relay]:
    base = provider.results[0].rsplit("/", 1)[0]
    relay = local_relay(tmp_path, provider, clock=clock, EVOLINK_BASE_URL=base, RELAY_MAX_IN_FLIGHT="1")
    yield relay
    relay.close()


def test_the_admitter_that_loses_the_race_leaves_the_winners_slot_held(
        one_slot: Relay, provider: FakeProvider, clock: Clock) -> None:
    first = submit(one_slot, {**REQUEST, "prompt": "shot 1"})
    clock.advance(1)
    second = submit(one_slot, {**REQUEST, "prompt": "shot 2"})
    assert first.task_id is not None and second.status is JobStatus.QUEUED
    provider.finish(first.task_id)
    ingest(one_slot, first.id, task_hint=first.task_id)  # published: its slot frees
    job_then, leases_then = one_slot.jobs.get(second.id), one_slot.slots.leases(clock())  # what both admitters read
    assert admit_waiting(one_slot) == 1  # the winner admits and submits the second job
    with as_read_before(one_slot, job_then, leases_then):
        assert admit_waiting(one_slot) == 0  # the loser takes the same job's slot, then its write conflicts
    third = submit(one_slot, {**REQUEST, "prompt": "shot 3"})
    assert [lease.job_id for lease in one_slot.slots.leases(clock())] == [second.id]
    assert third.status is JobStatus.QUEUED and len(provider.creates) == 2
