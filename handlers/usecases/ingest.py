"""Ingest: read the task from the provider (the truth), decide, copy its result, conclude, publish one event.

Safe to run any number of times for the same job, concurrently: a lease (a conditional
write) lets one worker copy at a time, object keys are deterministic, and the event id is
derived from job and outcome.

What one job records of other callers is bounded: at most ``MAX_OTHER_TASKS`` other task ids
while it runs, and once it has ended (or was cancelled) only the first late callback
(``jobs/{id}/late-callback.json`` beside its manifest, with the task id and when it came); later ones
are ignored without a write or a provider call. A cancelled job's late callback never stores,
publishes anything new or changes its status.

A task that failed with a code that says try again is followed by a new task of the same job
(:mod:`handlers.usecases.retries`); a callback that names one of the job's earlier, failed tasks
is never adopted and never read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from handlers.app.relay import Relay
from handlers.base.errors import Conflict, ProviderRejected
from handlers.base.logs import get_logger
from handlers.domain.jobs import Job, JobStatus, Outcome, Output
from handlers.provider.evolink.task import Task
from handlers.usecases.admission import keep_slot
from handlers.usecases.copy import Busy, copy_results, owned_update, take_lease
from handlers.usecases.media import describe_outputs
from handlers.usecases.outcomes import publish_outcome, record_outcome
from handlers.usecases.retries import RETRYABLE_CODES, is_old_task, may_retry, retry

__all__ = ["MAX_OTHER_TASKS", "Busy", "Verdict", "decide", "ingest", "late_callback_key"]

log = get_logger(__name__)
MAX_OTHER_TASKS = 10
"""Other task ids one job records (a second task that called back to it); more are logged, not kept."""


class Verdict(NamedTuple):
    """What a final task means for its job: the outcome, and its error or the results to copy (then the copies);
    ``retryable`` when the task failed with a code that says try again."""

    outcome: Outcome
    error: Mapping[str, Any] | None = None
    results: tuple[str, ...] = ()
    report: Mapping[str, Any] = {}
    outputs: tuple[Output, ...] = ()
    credits_used: float | None = None
    retryable: bool = False


def ingest(relay: Relay, job_id: str, *, task_hint: str | None = None, worker: str = "worker",
           callback_at: float | None = None) -> Job:
    """Bring the job up to date with its task; ``callback_at`` is when the callback that asked for it came.

    One straight path: read the task, decide, copy, conclude, publish. A job whose outcome is
    already recorded (a worker stopped before its event went out) goes straight to publishing.
    """
    job = relay.jobs.get(job_id)
    if callback_at is not None and (job.terminal or job.outcome is Outcome.CANCELLED):
        _note_late_callback(relay, job, task_hint, callback_at)
    if job.terminal:
        return job
    job = _note_other_task(relay, job, task_hint)
    if job.outcome is None:
        job = _resolve_task_id(relay, job, task_hint)
        if job.task_id is None or task_hint not in (None, job.task_id):
            return job  # no task to read yet, or the callback came from another or an earlier task
        task = _read_task(relay, job)
        if isinstance(task, Task) and not task.is_final:
            return _progress(relay, job, task)
        verdict = decide(task)
        if verdict.retryable and may_retry(job, verdict.error, relay.settings.max_attempts):
            return retry(relay, job, verdict.error or {})
        if verdict.outcome is Outcome.COMPLETED:
            job, copied = copy_results(relay, take_lease(relay, job, worker), verdict.results, worker)
            if isinstance(copied, tuple):
                job, copied = describe_outputs(relay, job, copied, worker, report=verdict.report)
            verdict = (verdict._replace(outputs=copied) if isinstance(copied, tuple)
                       else Verdict(Outcome.FAILED, copied.as_dict()))
        try:
            job = _conclude(relay, job, verdict, worker)
        except (Busy, Conflict):
            _discard_unrecorded(relay, job.id, verdict.outputs)
            raise
    return publish_outcome(relay, job)


# --- read ----------------------------------------------------------------------------------------

def _note_other_task(relay: Relay, job: Job, hint: str | None) -> Job:
    if hint is None or hint == job.task_id or hint in job.other_tasks or job.task_id is None or is_old_task(job, hint):
        return job
    if len(job.other_tasks) >= MAX_OTHER_TASKS:
        log.info("job.other_task_not_kept", job_id=job.id, other_task_id=hint, kept=len(job.other_tasks))
        return job
    log.warning("job.other_task", job_id=job.id, task_id=job.task_id, other_task_id=hint)
    return relay.jobs.update(job.noted_other_task(relay.clock(), hint))


def _resolve_task_id(relay: Relay, job: Job, hint: str | None) -> Job:
    """A job that does not know its task learns it from the callback (signed for this job, so the task is the
    job's): one whose create outcome was unknown, or one still claimed by a submitter that died (or is about
    to record it: then its own write finds the task recorded)."""
    if job.task_id is not None or hint is None or job.status not in (JobStatus.ACCEPTED, JobStatus.SUBMITTED):
        return job
    if is_old_task(job, hint):  # an earlier task of a retried job: it failed, and the job has moved on
        log.info("callback.old_task", job_id=job.id, task_id=hint, attempts=len(job.failed_tasks) + 1)
        return job
    if job.status is JobStatus.SUBMITTED and not job.unknown_outcome:
        return job
    task = relay.provider.get_task(hint)  # proves the task exists under our key
    now = relay.clock()
    log.info("job.outcome_resolved", job_id=job.id, task_id=task.id, claimed=job.status is JobStatus.ACCEPTED)
    if job.status is JobStatus.SUBMITTED:
        job = relay.jobs.update(job.resolved(now, task.id, estimated_time=task.estimated_time))
    else:
        job = relay.jobs.update(job.submitted(
            now, task.id, estimated_time=task.estimated_time, credits_reserved=task.credits_reserved,
            check_at=min(now + (task.estimated_time or 0) + relay.settings.reconcile_grace,
                         job.created_at + relay.settings.expire_after)))
    keep_slot(relay, job)
    return job


def _read_task(relay: Relay, job: Job) -> Task | ProviderRejected:
    """The job's task as the provider reports it, or the provider's answer that it does not know the task."""
    try:
        return relay.provider.get_task(job.task_id or "")
    except ProviderRejected as exc:
        if exc.status not in (400, 404):
            raise  # 401/403: our key, not this job; retried, then dead-lettered where an alarm sees it
        return exc


def _progress(relay: Relay, job: Job, task: Task) -> Job:
    processing = task.status == "processing"
    if (processing and job.status is not JobStatus.PROCESSING) or task.progress != job.progress:
        return relay.jobs.update(job.progressed(relay.clock(), task.progress, processing=processing))
    return job


# --- decide --------------------------------------------------------------------------------------

def decide(task: Task | ProviderRejected) -> Verdict:
    """What a final task (or the provider's "no such task") means for its job."""
    if isinstance(task, ProviderRejected):
        return Verdict(Outcome.FAILED, {"code": "task_not_found", "message": task.message})
    if task.outcome is Outcome.COMPLETED and task.results:
        return Verdict(Outcome.COMPLETED, results=task.results, report=task.raw, credits_used=task.credits_used)
    if task.outcome is Outcome.COMPLETED:
        return Verdict(Outcome.FAILED, {"code": "no_results", "message": "the task completed without results"})
    outcome = task.outcome or Outcome.FAILED
    if outcome is Outcome.CANCELLED:
        return Verdict(outcome, task.error.as_dict() if task.error is not None
                       else {"code": "cancelled", "message": "the provider cancelled the task"})
    error = task.error.as_dict() if task.error is not None else {
        "code": "unknown_error", "message": "the provider failed the task without saying why"}
    return Verdict(outcome, error, retryable=error["code"] in RETRYABLE_CODES)


# --- conclude ------------------------------------------------------------------------------------

def _conclude(relay: Relay, job: Job, verdict: Verdict, worker: str) -> Job:
    """Record the outcome: ``stored`` with the copies (under the lease), or ``concluded`` with the error."""
    if verdict.outcome is Outcome.COMPLETED:
        return owned_update(relay, job, worker, lambda current: current.stored(
            relay.clock(), verdict.outputs, credits_used=verdict.credits_used))
    return record_outcome(relay, job, verdict.outcome, verdict.error)


def _discard_unrecorded(relay: Relay, job_id: str, outputs: tuple[Output, ...]) -> None:
    """The copies could not be recorded because the job ended otherwise meanwhile (cancelled, expired, failed):
    remove what this ingest wrote under ``jobs/{id}/`` (the record of a late callback stays)."""
    current = relay.jobs.get(job_id)
    if not outputs or current.outcome in (None, Outcome.COMPLETED):
        return  # nothing copied, or another worker goes on with the copies
    prefix = f"jobs/{job_id}/"
    keys = [item.key for item in relay.blobs.older(prefix, math.inf) if item.key != late_callback_key(job_id)]
    relay.blobs.delete(keys)
    log.info("job.copies_discarded", job_id=job_id, outcome=str(current.outcome), objects=len(keys))


# --- late callbacks ------------------------------------------------------------------------------

def late_callback_key(job_id: str) -> str:
    """Where the first callback that came after the job ended is recorded."""
    return f"jobs/{job_id}/late-callback.json"


def _note_late_callback(relay: Relay, job: Job, hint: str | None, received_at: float) -> None:
    """Record the first callback for an ended job; ignore every later one (one read, no write)."""
    key = late_callback_key(job.id)
    if relay.blobs.head(key) is not None:
        log.debug("callback.late_ignored", job_id=job.id, task_id=hint)
        return
    log.warning("callback.late", job_id=job.id, status=job.status.value, task_id=hint)
    record = {"job_id": job.id, "status": job.status.value, "task_id": hint, "received_at": received_at,
              "outcome": None if job.outcome is None else Outcome(job.outcome).value}
    relay.blobs.put_stream(key, [json.dumps(record, sort_keys=True).encode()], content_type="application/json")
