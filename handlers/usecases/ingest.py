"""Ingest: read the task from the provider (the truth), decide, copy its result, conclude, publish one event.

Safe to run any number of times for the same job, concurrently: a lease (a conditional
write) lets one worker copy at a time, object keys are deterministic, and the event id is
derived from job and outcome.

What one job records of other callers is bounded: at most ``MAX_OTHER_TASKS`` other task ids
while it runs, and once it has ended only the first late callback (``jobs/{id}/late-callback.json``
beside its manifest); later ones are ignored without a write or a provider call.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from handlers.app.relay import Relay
from handlers.base.errors import Conflict, DownloadFailed, ProviderRejected, RelayError
from handlers.base.logs import get_logger
from handlers.domain.jobs import Job, JobStatus, Outcome, Output
from handlers.provider.evolink.task import Task
from handlers.usecases.admission import keep_slot
from handlers.usecases.outcomes import publish_outcome, record_outcome

__all__ = ["MAX_OTHER_TASKS", "Busy", "Verdict", "decide", "ingest", "late_callback_key"]

log = get_logger(__name__)
MAX_OTHER_TASKS = 10
"""Other task ids one job records (a second task that called back to it); more are logged, not kept."""


class Busy(RelayError):
    """Another worker holds the job's lease; try again after ``delay`` seconds."""

    code = "busy"

    def __init__(self, job_id: str, delay: float) -> None:
        super().__init__(f"job {job_id} is being ingested by another worker")
        self.delay = delay



class Verdict(NamedTuple):
    """What a final task means for its job: the outcome, and its error or the results to copy (then the copies)."""

    outcome: Outcome
    error: Mapping[str, Any] | None = None
    results: tuple[str, ...] = ()
    report: Mapping[str, Any] = {}
    outputs: tuple[Output, ...] = ()
    credits_used: float | None = None


def ingest(relay: Relay, job_id: str, *, task_hint: str | None = None, worker: str = "worker",
           callback_at: float | None = None) -> Job:
    """Bring the job up to date with its task; ``callback_at`` is when the callback that asked for it came.

    One straight path: read the task, decide, copy, conclude, publish. A job whose outcome is
    already recorded (a worker stopped before its event went out) goes straight to publishing.
    """
    job = relay.jobs.get(job_id)
    if job.terminal:
        if callback_at is not None:
            _note_late_callback(relay, job, task_hint, callback_at)
        return job
    job = _note_other_task(relay, job, task_hint)
    if job.outcome is None:
        job = _resolve_task_id(relay, job, task_hint)
        if job.task_id is None or task_hint not in (None, job.task_id):
            return job  # no task to read yet, or the callback came from another task (noted above)
        task = _read_task(relay, job)
        if isinstance(task, Task) and not task.is_final:
            return _progress(relay, job, task)
        verdict = decide(task)
        if verdict.outcome is Outcome.COMPLETED:
            job, verdict = _copy(relay, _take_lease(relay, job, worker), verdict, worker)
        job = _conclude(relay, job, verdict, worker)
    return publish_outcome(relay, job)


# --- read ----------------------------------------------------------------------------------------

def _note_other_task(relay: Relay, job: Job, hint: str | None) -> Job:
    if hint is None or hint == job.task_id or hint in job.other_tasks or job.task_id is None:
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
    if task.error is not None:
        return Verdict(outcome, task.error.as_dict())
    if outcome is Outcome.CANCELLED:
        return Verdict(outcome, {"code": "cancelled", "message": "the provider cancelled the task"})
    return Verdict(outcome, {"code": "unknown_error", "message": "the provider failed the task without saying why"})


# --- copy ----------------------------------------------------------------------------------------

def _take_lease(relay: Relay, job: Job, worker: str) -> Job:
    now = relay.clock()
    if job.lease_owner not in (None, worker) and (job.lease_until or 0) > now:
        raise Busy(job.id, min((job.lease_until or now) - now, 30.0))
    leased = job.leased(now, worker, now + relay.settings.ingest_lease)
    try:
        return relay.jobs.update(leased)
    except Conflict as exc:
        raise Busy(job.id, 1.0) from exc


def _copy(relay: Relay, job: Job, verdict: Verdict, worker: str) -> tuple[Job, Verdict]:
    """Copy the results (and write the manifest) under the lease; a permanent failure fails the job."""
    keeper = _LeaseKeeper(relay, job, worker)
    try:
        outputs = tuple(_copy_one(relay, job, index, url) for index, url in enumerate(verdict.results))
    except DownloadFailed as exc:
        job = keeper.stop()
        if not exc.permanent:
            _release(relay, job, worker)
            raise
        log.warning("job.copy_failed", job_id=job.id, code=exc.code, reason=exc.message)
        relay.metrics.ingest_failure(exc.code)
        return relay.jobs.get(job.id), Verdict(Outcome.FAILED, exc.as_dict())
    except RelayError:
        _release(relay, keeper.stop(), worker)
        raise
    job = keeper.stop()
    _write_manifest(relay, job, verdict.report, outputs)
    log.info("job.stored", job_id=job.id, outputs=len(outputs), bytes=sum(o.size for o in outputs))
    return job, verdict._replace(outputs=outputs)


def _copy_one(relay: Relay, job: Job, index: int, url: str) -> Output:
    key = f"jobs/{job.id}/output-{index}.mp4"
    stored = relay.blobs.head(key)
    if stored is None:
        started = time.perf_counter()
        with relay.fetcher.open(url) as download:
            stored = relay.blobs.put_stream(
                key, download.chunks, content_type=download.content_type,
                metadata={"job_id": job.id, "task_id": job.task_id or "", "source": "evolink"})
        relay.metrics.copied(stored.size, time.perf_counter() - started)
    return Output(uri=stored.uri, key=stored.key, size=stored.size, sha256=stored.sha256,
                  content_type=stored.content_type)


def _write_manifest(relay: Relay, job: Job, report: Mapping[str, Any], outputs: tuple[Output, ...]) -> None:
    manifest: dict[str, Any] = {
        "job_id": job.id, "request": dict(job.request), "metadata": dict(job.metadata),
        "task": dict(report), "outputs": [o.as_dict() for o in outputs],
        "timings": {"created_at": job.created_at, "submitted_at": job.submitted_at, "stored_at": relay.clock()},
    }
    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
    relay.blobs.put_stream(f"jobs/{job.id}/manifest.json", [body], content_type="application/json")


class _LeaseKeeper:
    """Renews the lease every third of its length while a long copy runs."""

    def __init__(self, relay: Relay, job: Job, worker: str) -> None:
        self._relay, self._worker, self.job = relay, worker, job
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job.id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        relay, lease = self._relay, self._relay.settings.ingest_lease
        while not self._stop.wait(lease / 3):
            with self._lock:
                try:
                    self.job = _owned_update(
                        relay, self.job, self._worker, lambda job: job.leased(relay.clock(), self._worker,
                                                                              relay.clock() + lease))
                except RelayError as exc:
                    log.warning("job.lease_lost", job_id=self.job.id, code=exc.code)
                    return

    def stop(self) -> Job:
        self._stop.set()
        self._thread.join()
        with self._lock:
            return self.job


def _release(relay: Relay, job: Job, worker: str) -> None:
    """Best effort: let the next worker in at once after a failure that will be retried."""
    try:
        _owned_update(relay, job, worker, lambda current: current.released(relay.clock()))
    except RelayError:
        log.info("job.lease_kept", job_id=job.id)  # it expires on its own


def _owned_update(relay: Relay, job: Job, worker: str, move: Callable[[Job], Job]) -> Job:
    """Apply ``move`` to a job this worker leases, re-reading it when another writer (the
    reconciler moving ``check_at``, say) bumped its version in the meantime.

    A move the lifecycle refuses (the reconciler expired the job meanwhile) is not retried.
    """
    for _ in range(5):
        moved = move(job)
        try:
            return relay.jobs.update(moved)
        except Conflict:
            job = relay.jobs.get(job.id)
            if job.lease_owner != worker:
                raise Busy(job.id, 1.0) from None
    raise Busy(job.id, 1.0)


# --- conclude ------------------------------------------------------------------------------------

def _conclude(relay: Relay, job: Job, verdict: Verdict, worker: str) -> Job:
    """Record the outcome: ``stored`` with the copies (under the lease), or ``concluded`` with the error."""
    if verdict.outcome is Outcome.COMPLETED:
        return _owned_update(relay, job, worker, lambda current: current.stored(
            relay.clock(), verdict.outputs, credits_used=verdict.credits_used))
    return record_outcome(relay, job, verdict.outcome, verdict.error)


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
    record = {"job_id": job.id, "status": job.status.value, "task_id": hint, "received_at": received_at}
    relay.blobs.put_stream(key, [json.dumps(record, sort_keys=True).encode()], content_type="application/json")
