"""Cancelling jobs, by their caller and at their deadline: local adapters, a fake provider, a clock told when
to move."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.app.relay import Relay
from handlers.base.errors import InvalidRequest
from handlers.domain.jobs import Job, JobStatus, Outcome
from handlers.usecases import accept_callback, reconcile, submit
from handlers.usecases.cancel import CancelReason, JobEnded, cancel
from handlers.usecases.ingest import late_callback_key
from handlers.usecases.outcomes import record_outcome
from tests.support.fakes import Clock, FakeProvider, drain, local_relay
from tests.support.media_server import MediaServer

REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4}


@pytest.fixture
def relay(tmp_path: Path, provider: FakeProvider, media: MediaServer, clock: Clock) -> Iterator[Relay]:
    relay = local_relay(tmp_path, provider, clock, EVOLINK_BASE_URL=media.url(""), RELAY_RECONCILE_GRACE="30",
                        RELAY_RECONCILE_EVERY="60", RELAY_BUDGETS="default=1000/day")
    yield relay
    relay.close()


def callback(relay: Relay, job_id: str, task_id: str | None) -> None:
    accept_callback(relay, job_id, relay.signer.sign(job_id), json.dumps({"id": task_id}).encode())


def events(relay: Relay) -> list[dict[str, object]]:
    return [event for _, event in relay.bus.events()]  # type: ignore[attr-defined]


def in_status(relay: Relay, status: JobStatus) -> Job:
    """A job in ``status``: accepted (its create deferred), queued, waiting (on another job), submitted or
    processing (its task runs)."""
    job = submit(relay, REQUEST)
    if status is JobStatus.PROCESSING:
        job = relay.jobs.update(job.progressed(relay.clock(), 40, processing=True))
    elif status is not JobStatus.SUBMITTED:
        job = relay.jobs.update(dataclasses.replace(job, status=status, task_id=None, check_at=relay.clock() + 60,
                                                    depends_on=("job_" + "0" * 26,) if status is JobStatus.WAITING
                                                    else ()))
    return job


@pytest.mark.parametrize("status", [JobStatus.ACCEPTED, JobStatus.QUEUED, JobStatus.WAITING, JobStatus.SUBMITTED,
                                    JobStatus.PROCESSING])
def test_a_job_that_has_not_ended_is_cancelled_with_one_event(relay: Relay, status: JobStatus) -> None:
    job = in_status(relay, status)
    cancelled = cancel(relay, job.id)
    [event] = events(relay)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.check_at is None
    assert event["type"] == "io.seedance-relay.job.cancelled" and event["data"]["error"]["reason"] == "caller"  # type: ignore[index]
    running = status in (JobStatus.SUBMITTED, JobStatus.PROCESSING)
    assert ("abandoned_task_id" in (cancelled.error or {})) is running


def test_cancelling_a_running_job_counts_its_abandoned_task_at_what_evolink_reserved(relay: Relay) -> None:
    """EvoLink has no cancel call and may still bill the task: the budget counts it, so cancels cannot pass it."""
    job = in_status(relay, JobStatus.SUBMITTED)
    assert job.credits_reserved is not None and job.credits_reserved != job.credits_held
    cancel(relay, job.id)
    usage = relay.ledger.usage(job.tenant, job.hold_period or "")
    assert (usage.held, usage.spent) == (0.0, job.credits_reserved)


def test_cancelling_a_job_that_never_reached_evolink_gives_its_budget_hold_back(relay: Relay) -> None:
    job = in_status(relay, JobStatus.QUEUED)
    cancel(relay, job.id)
    usage = relay.ledger.usage(job.tenant, job.hold_period or "")
    assert (usage.held, usage.spent) == (0.0, 0.0)


@pytest.mark.parametrize("outcome", [Outcome.COMPLETED, Outcome.FAILED, Outcome.EXPIRED])
def test_a_job_whose_outcome_is_recorded_is_not_cancelled(relay: Relay, provider: FakeProvider,
                                                          outcome: Outcome) -> None:
    job = submit(relay, REQUEST)
    if outcome is Outcome.COMPLETED:
        recorded = relay.jobs.update(job.stored(relay.clock(), ()))
    else:
        recorded = record_outcome(relay, job, outcome, {"code": "x", "message": "m"})
    with pytest.raises(JobEnded, match="already ended") as ended:
        cancel(relay, job.id)
    assert ended.value.as_dict()["status"] == recorded.status.value and ended.value.outcome == outcome.value
    assert relay.jobs.get(job.id).version == recorded.version and events(relay) == []


def test_a_published_job_is_not_cancelled_and_the_refusal_names_its_status(
        relay: Relay, provider: FakeProvider) -> None:
    job = submit(relay, REQUEST)
    provider.finish(job.task_id or "")
    callback(relay, job.id, job.task_id)
    drain(relay)
    with pytest.raises(JobEnded) as ended:
        cancel(relay, job.id)
    assert ended.value.code == "job_ended" and ended.value.as_dict()["status"] == "published"


def test_a_late_callback_for_a_cancelled_job_is_recorded_and_never_stored_or_published(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    job = submit(relay, REQUEST)
    cancelled = cancel(relay, job.id)
    provider.finish(job.task_id or "")  # the abandoned task runs on, and EvoLink completes it
    clock.advance(5)
    callback(relay, job.id, job.task_id)
    drain(relay)
    after = relay.jobs.get(job.id)
    note = json.loads(b"".join(relay.blobs.read(late_callback_key(job.id))))
    assert (after.status, after.version, after.outputs) == (JobStatus.CANCELLED, cancelled.version, ())
    assert note == {"job_id": job.id, "status": "cancelled", "outcome": "cancelled", "task_id": job.task_id,
                    "received_at": clock()}
    assert relay.blobs.head(f"jobs/{job.id}/output-0.mp4") is None and len(events(relay)) == 1


def test_a_callback_for_a_job_cancelled_but_not_yet_published_is_recorded_and_publishes_the_cancel(
        relay: Relay, provider: FakeProvider) -> None:
    """The cancel recorded its outcome and stopped before its event went out: the callback's ingest publishes
    ``cancelled`` (never the result) and records the callback."""
    job = submit(relay, REQUEST)
    record_outcome(relay, job, Outcome.CANCELLED, {"code": "cancelled", "reason": "caller", "message": "m"})
    provider.finish(job.task_id or "")
    callback(relay, job.id, job.task_id)
    drain(relay)
    [event] = events(relay)
    assert relay.jobs.get(job.id).status is JobStatus.CANCELLED and event["type"].endswith(".cancelled")  # type: ignore[union-attr]
    assert relay.blobs.head(late_callback_key(job.id)) is not None and provider.reads == []


def test_cancel_after_gives_the_job_a_deadline_the_reconciler_keeps(relay: Relay, clock: Clock) -> None:
    job = submit(relay, REQUEST, cancel_after=45)
    assert job.deadline_at == clock() + 45 and job.check_at == job.deadline_at  # due by its deadline at the latest
    clock.advance(44)
    assert reconcile(relay) == {}
    clock.advance(1)
    assert reconcile(relay) == {"deadline": 1}
    final = relay.jobs.get(job.id)
    [event] = events(relay)
    assert final.status is JobStatus.CANCELLED and final.error and final.error["reason"] == "deadline"
    assert event["data"]["error"]["reason"] == CancelReason.DEADLINE.value  # type: ignore[index]


def test_a_job_that_ends_before_its_deadline_is_left_alone(relay: Relay, provider: FakeProvider,
                                                           clock: Clock) -> None:
    job = submit(relay, REQUEST, cancel_after=600)
    provider.finish(job.task_id or "")
    callback(relay, job.id, job.task_id)
    drain(relay)
    clock.advance(601)
    assert reconcile(relay) == {}
    assert relay.jobs.get(job.id).status is JobStatus.PUBLISHED and len(events(relay)) == 1


@pytest.mark.parametrize(("value", "code"), [(0, "out_of_range"), (7 * 86_400 + 1, "out_of_range"),
                                             (1.5, "invalid_type"), ("60", "invalid_type"), (True, "invalid_type")])
def test_a_bad_cancel_after_is_refused_naming_the_field(relay: Relay, value: object, code: str) -> None:
    with pytest.raises(InvalidRequest, match="cancel_after") as refused:
        submit(relay, REQUEST, cancel_after=value)  # type: ignore[arg-type]
    [violation] = refused.value.violations
    assert (violation.field, violation.code) == ("cancel_after", code)


def test_a_job_waiting_for_a_cancelled_job_fails_with_dependency_failed(relay: Relay, provider: FakeProvider) -> None:
    first = submit(relay, REQUEST)
    waiting = submit(relay, {"model": "seedance-2.0-reference-to-video", "prompt": "continue @video1", "duration": 5,
                             "quality": "480p", "video_urls": [f"job://{first.id}/output-0"]})
    assert waiting.status is JobStatus.WAITING
    cancel(relay, first.id)
    failed = relay.jobs.get(waiting.id)
    assert failed.status is JobStatus.FAILED and failed.error and failed.error["code"] == "dependency_failed"
    assert failed.error["dependency"] == first.id and "cancelled" in failed.error["message"]
    assert len(provider.creates) == 1


def test_a_cancel_whose_callback_published_the_cancellation_first_answers_the_cancelled_job(
        relay: Relay, provider: FakeProvider) -> None:
    """A cancel and its task's callback race: the cancel records the outcome, the callback's ingest publishes it,
    then the cancel publishes the same event and loses the version check. The cancel answers the cancelled job,
    not a conflict, and there is still one event."""
    from handlers.usecases.outcomes import publish_outcome

    job = submit(relay, REQUEST)
    recorded = record_outcome(relay, job, Outcome.CANCELLED, {"code": "cancelled", "reason": "caller", "message": "m"})
    provider.finish(job.task_id or "")
    callback(relay, job.id, job.task_id)
    drain(relay)  # the callback's ingest published the cancellation
    answered = publish_outcome(relay, recorded)  # the cancel, on the job as it read it
    [event] = events(relay)
    assert answered.status is JobStatus.CANCELLED and answered.event_ids == (event["id"],)


def test_publishing_retries_on_a_write_that_moved_the_job_without_touching_its_outcome(relay: Relay) -> None:
    from handlers.usecases.outcomes import publish_outcome

    job = submit(relay, REQUEST)
    recorded = record_outcome(relay, job, Outcome.CANCELLED, {"code": "cancelled", "reason": "caller", "message": "m"})
    relay.jobs.update(recorded.rescheduled(relay.clock(), relay.clock() + 30))  # a reconciler pass moved it on
    published = publish_outcome(relay, recorded)
    assert published.status is JobStatus.CANCELLED and len(events(relay)) == 1
