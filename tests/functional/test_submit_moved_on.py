"""A submit whose job another actor moved on between its create and its start answers the job as it is.

Under load the reconciler can take a just-created job before its own submitter gets to it (its first check is
``RELAY_RECONCILE_GRACE`` after the create), and a repeated request with the same ``Idempotency-Key`` can race
the first. The submitter's later write then finds a newer version; the submit must not answer ``409``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from handlers.domain.jobs import Job, JobStatus
from handlers.usecases import submit
from tests.support.fakes import FakeProvider, local_relay

REQUEST: dict[str, Any] = {"model": "seedance-2.0-text-to-video", "prompt": "a paper boat", "duration": 4}


def test_a_job_claimed_by_another_actor_before_its_submitter_queues_it_is_answered_as_it_is(
        tmp_path: Path) -> None:
    relay = local_relay(tmp_path, FakeProvider())
    relay.throttle.blocked_until = time.time() + 60  # EvoLink said 429: the submitter will queue the job
    store, created = relay.jobs, []

    def create_then_claimed_elsewhere(job: Job) -> Job:
        stored = store_create(job)
        created.append(store.update(stored.claimed(time.time())))  # the reconciler takes it meanwhile
        return stored  # the submitter holds the version it created

    store_create = store.create
    relay.jobs.create = create_then_claimed_elsewhere  # type: ignore[method-assign]
    try:
        job = submit(relay, REQUEST, idempotency_key="boat-1")
    finally:
        relay.close()
    [claimed] = created
    assert job.id == claimed.id and job.version == claimed.version
    assert job.status is JobStatus.ACCEPTED and job.submit_claimed_at is not None
