"""Retries of tasks EvoLink failed with a code that says try again: local adapters, a fake provider, a real
media server and a clock that moves only when told."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.app.relay import Relay
from handlers.domain.admission import Throttle
from handlers.domain.jobs import Job, JobStatus
from handlers.usecases import accept_callback, reconcile, submit
from handlers.usecases.ingest import late_callback_key
from tests.support.fakes import Clock, FakeProvider, drain, local_relay
from tests.support.media_server import MediaServer

REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4}
RETRYABLE = {"code": "service_error", "message": "Internal service error, retry later.", "type": "task_error"}
BACKOFF = 30.0


@pytest.fixture
def relay(tmp_path: Path, provider: FakeProvider, media: MediaServer, clock: Clock) -> Iterator[Relay]:
    relay = local_relay(tmp_path, provider, clock, EVOLINK_BASE_URL=media.url(""), RELAY_RECONCILE_GRACE="30",
                        RELAY_RECONCILE_EVERY="60", RELAY_RETRY_BACKOFF=str(BACKOFF), RELAY_MAX_ATTEMPTS="3",
                        RELAY_BUDGETS="default=1000/day")
    relay.throttle = Throttle(relay.throttle.configured, draw=random.Random(4).random)  # repeatable jitter
    yield relay
    relay.close()


def callback(relay: Relay, job_id: str, task_id: str | None) -> None:
    accept_callback(relay, job_id, relay.signer.sign(job_id), json.dumps({"id": task_id}).encode())


def fail_current_task(relay: Relay, provider: FakeProvider, job: Job, error: dict[str, str] | None = None) -> Job:
    """EvoLink fails the job's task; its callback comes and is ingested."""
    task_id = relay.jobs.get(job.id).task_id
    provider.finish(task_id or "", "failed", error or RETRYABLE)
    callback(relay, job.id, task_id)
    drain(relay)
    return relay.jobs.get(job.id)


def resubmit_after_backoff(relay: Relay, clock: Clock, job: Job) -> Job:
    """The reconciler's pass once the job's backoff is over."""
    clock.advance((job.check_at or clock()) - clock() + 0.001)
    assert reconcile(relay) == {"retried": 1}
    return relay.jobs.get(job.id)


def events(relay: Relay) -> list[dict[str, object]]:
    return [event for _, event in relay.bus.events()]  # type: ignore[attr-defined]


def test_a_retryable_failure_records_the_task_and_waits_its_backoff_in_accepted(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    job = submit(relay, REQUEST)
    first = job.task_id
    waiting = fail_current_task(relay, provider, job)
    assert waiting.status is JobStatus.ACCEPTED and waiting.outcome is None and waiting.task_id is None
    [record] = waiting.failed_tasks
    assert record["task_id"] == first and record["code"] == "service_error" and "failed_at" in record
    assert BACKOFF / 2 <= (waiting.check_at or 0) - clock() <= BACKOFF
    assert provider.reads == [first] and len(provider.creates) == 1 and events(relay) == []


def test_after_the_backoff_the_reconciler_creates_a_new_task_and_its_result_is_published_once(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    job = submit(relay, REQUEST)
    first = job.task_id
    second = resubmit_after_backoff(relay, clock, fail_current_task(relay, provider, job))
    assert second.status is JobStatus.SUBMITTED and second.task_id not in (None, first) and len(provider.creates) == 2
    provider.finish(second.task_id or "")
    callback(relay, job.id, second.task_id)
    drain(relay)
    final = relay.jobs.get(job.id)
    [event] = events(relay)
    assert final.status is JobStatus.PUBLISHED and event["type"] == "io.seedance-relay.job.completed"
    assert [a["task_id"] for a in event["data"]["attempts"]] == [first, second.task_id]  # type: ignore[index]


def test_each_retry_waits_twice_as_long_and_the_third_failure_ends_the_job_with_one_event(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    job = submit(relay, REQUEST)
    waits = []
    for _ in range(2):
        job = fail_current_task(relay, provider, job)
        waits.append((job.check_at or 0) - clock())
        job = resubmit_after_backoff(relay, clock, job)
    final = fail_current_task(relay, provider, job)
    [event] = events(relay)
    assert BACKOFF / 2 <= waits[0] <= BACKOFF and BACKOFF <= waits[1] <= 2 * BACKOFF
    assert final.status is JobStatus.FAILED and final.error and final.error["code"] == "service_error"
    assert len({a["task_id"] for a in event["data"]["attempts"]}) == 3 == len(provider.creates)  # type: ignore[index]


@pytest.mark.parametrize("code", ["content_policy_violation", "invalid_parameters", "image_processing_error",
                                  "image_dimension_mismatch", "quota_exceeded", "resource_not_found"])
def test_a_code_the_caller_must_fix_is_never_retried(relay: Relay, provider: FakeProvider, code: str) -> None:
    final = fail_current_task(relay, provider, submit(relay, REQUEST), {"code": code, "message": "no"})
    assert final.status is JobStatus.FAILED and final.failed_tasks == () and len(provider.creates) == 1
    assert final.error and final.error["code"] == code


def test_the_budget_hold_stays_in_place_through_the_backoff_and_settles_once(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    job = submit(relay, REQUEST)
    held = relay.ledger.usage(job.tenant, job.hold_period or "").held
    waiting = fail_current_task(relay, provider, job)
    assert relay.ledger.usage(job.tenant, job.hold_period or "").held == held > 0
    second = resubmit_after_backoff(relay, clock, waiting)
    provider.finish(second.task_id or "")
    callback(relay, job.id, second.task_id)
    drain(relay)
    usage = relay.ledger.usage(job.tenant, job.hold_period or "")
    assert (usage.held, usage.spent, usage.jobs) == (0.0, 30.0, 1)  # billed once: what the second task used


def test_a_late_callback_of_the_failed_task_is_never_adopted_while_the_job_waits(
        relay: Relay, provider: FakeProvider) -> None:
    """After a retry the job is accepted with no task: a callback naming the old task must not become its task."""
    job = submit(relay, REQUEST)
    old = job.task_id
    waiting = fail_current_task(relay, provider, job)
    reads = len(provider.reads)
    callback(relay, job.id, old)
    drain(relay)
    after = relay.jobs.get(job.id)
    assert after.status is JobStatus.ACCEPTED and after.task_id is None and after.version == waiting.version
    assert len(provider.reads) == reads and events(relay) == []


def test_a_late_callback_of_the_failed_task_never_publishes_while_the_new_task_runs(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    job = submit(relay, REQUEST)
    old = job.task_id
    running = resubmit_after_backoff(relay, clock, fail_current_task(relay, provider, job))
    callback(relay, job.id, old)
    drain(relay)
    after = relay.jobs.get(job.id)
    assert after.status is JobStatus.SUBMITTED and after.task_id == running.task_id and after.other_tasks == ()
    assert events(relay) == []


def test_a_callback_of_an_earlier_task_after_the_job_ended_is_only_noted(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    job = submit(relay, REQUEST)
    old = job.task_id
    second = resubmit_after_backoff(relay, clock, fail_current_task(relay, provider, job))
    provider.finish(second.task_id or "")
    callback(relay, job.id, second.task_id)
    drain(relay)
    callback(relay, job.id, old)
    drain(relay)
    note = json.loads(b"".join(relay.blobs.read(late_callback_key(job.id))))
    assert note["task_id"] == old and relay.jobs.get(job.id).status is JobStatus.PUBLISHED and len(events(relay)) == 1


def test_one_attempt_allowed_means_a_retryable_failure_fails_at_once(
        tmp_path: Path, provider: FakeProvider, media: MediaServer) -> None:
    relay = local_relay(tmp_path, provider, EVOLINK_BASE_URL=media.url(""), RELAY_MAX_ATTEMPTS="1")
    try:
        final = fail_current_task(relay, provider, submit(relay, REQUEST))
    finally:
        relay.close()
    assert final.status is JobStatus.FAILED and final.error and final.error["code"] == "service_error"
