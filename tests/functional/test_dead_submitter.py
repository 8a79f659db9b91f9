"""A submitter that dies after EvoLink created the task but before the job recorded it: the task's callback, which
names the task, must still bring the job home and free its slot.

The death is played out on local adapters with a fake provider: the job store refuses the one write that would
record the task (:class:`DiesRecordingTheTask`), as a killed process never makes it; then a fresh relay on the same
files ("the restart") receives the callback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers.app.relay import Relay
from handlers.domain.jobs import Job, JobStatus
from handlers.ports import JobStore
from handlers.usecases import ingest, reconcile, submit
from tests.support.fakes import Clock, FakeProvider, local_relay

REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4}


class Killed(Exception):
    """The process died here."""


class DiesRecordingTheTask:
    """The job store of a process that dies as it is about to record a job's task id."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def update(self, job: Job) -> Job:
        if job.task_id is not None and self.store.get(job.id).task_id is None:
            raise Killed(f"killed before recording task {job.task_id}")
        return self.store.update(job)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def relay_on(tmp_path: Path, provider: FakeProvider, clock: Clock) -> Relay:
    base = provider.results[0].rsplit("/", 1)[0]
    return local_relay(tmp_path, provider, clock=clock, EVOLINK_BASE_URL=base, RELAY_MAX_IN_FLIGHT="1")


@pytest.fixture
def restarted(tmp_path: Path, provider: FakeProvider, clock: Clock) -> Iterator[tuple[Relay, str, str]]:
    """The relay after a submitter died mid-create, and the job and task it left behind."""
    dying = relay_on(tmp_path, provider, clock)
    dying.jobs = DiesRecordingTheTask(dying.jobs)  # type: ignore[assignment]
    with pytest.raises(Killed):
        submit(dying, REQUEST)
    dying.close()
    relay = relay_on(tmp_path, provider, clock)
    [job] = relay.jobs.page(limit=10)[0]
    yield relay, job.id, provider.only_task()
    relay.close()


def test_the_callback_of_a_task_created_by_a_dead_submitter_publishes_the_job_and_frees_its_slot(
        restarted: tuple[Relay, str, str], provider: FakeProvider, clock: Clock) -> None:
    relay, job_id, task_id = restarted
    provider.finish(task_id)
    clock.advance(5)
    ingest(relay, job_id, task_hint=task_id)  # the callback arrives after the restart
    reconcile(relay)
    job = relay.jobs.get(job_id)
    assert (job.status, job.task_id) == (JobStatus.PUBLISHED, task_id)
    assert relay.slots.leases(clock()) == []


def test_a_dead_submitters_job_is_left_claimed_with_its_task_created(
        restarted: tuple[Relay, str, str], provider: FakeProvider, clock: Clock) -> None:
    """The state the test above starts from: EvoLink has the task, the job does not know it."""
    relay, job_id, _ = restarted
    job = relay.jobs.get(job_id)
    assert (job.status, job.task_id, job.submit_claimed_at is not None) == (JobStatus.ACCEPTED, None, True)
    assert len(provider.creates) == 1 and [lease.job_id for lease in relay.slots.leases(clock())] == [job_id]
