"""Recording a job's outcome and publishing its one event, and waking the jobs that wait for it.

Before the event goes out, what the job held is given back: its budget hold settles to what
EvoLink billed (nothing for a task that failed, was cancelled or was never created) and its slot
at EvoLink frees for the next queued job. Both are safe to repeat, so a publish that is retried
after a crash settles nothing twice.

Once the event is out, each job recorded as waiting for this one (``dependents``, see
:mod:`handlers.usecases.dependencies`) is looked at again (:func:`settle_waiting`): when every job it
names is published it joins the queue to be submitted; when one of them failed, was cancelled, rejected
or expired it fails with ``dependency_failed`` naming that job, and its own event wakes the jobs waiting
for it in turn. A wake-up that is lost (a crash, a write race) is caught by the reconciler, which looks at
every waiting job again when its ``check_at`` comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.app.relay import Relay
from handlers.base.errors import Conflict, NotFound, RelayError
from handlers.base.logs import get_logger
from handlers.domain.events import SOURCE, build_event
from handlers.domain.jobs import Job, JobStatus, Outcome
from handlers.domain.storyboards import STORYBOARD_MODEL, build_storyboard_event
from handlers.usecases.admission import ADMISSION_MESSAGE, finished, wait_in_queue
from handlers.usecases.budget import settle_hold
from handlers.usecases.references import NEVER_PUBLISHED

__all__ = ["conclude", "publish_outcome", "record_outcome", "settle_waiting", "wake_dependents"]

log = get_logger(__name__)
_PUBLISH_ATTEMPTS = 5


def record_outcome(relay: Relay, job: Job, outcome: Outcome, error: Mapping[str, Any] | None) -> Job:
    """Record an outcome without outputs (failed, cancelled, expired, rejected); the event is still due.

    The job keeps its status until the event is out, so a job that reads as final always has
    its event published; a crash in between leaves ``check_at`` set for the reconciler.
    """
    return relay.jobs.update(job.concluded(relay.clock(), outcome, error))


def conclude(relay: Relay, job: Job, outcome: Outcome, error: Mapping[str, Any] | None) -> Job:
    """:func:`record_outcome`, then :func:`publish_outcome`."""
    return publish_outcome(relay, record_outcome(relay, job, outcome, error))


def publish_outcome(relay: Relay, job: Job) -> Job:
    """Settle what the job held, publish its outcome event (same id on every retry) and record it published.

    A storyboard's own job publishes the storyboard's event (``storyboard.completed`` or ``storyboard.failed``)."""
    event = _event(relay, job, relay.clock())
    if event["id"] in job.event_ids:
        return job
    _give_back(relay, job)
    relay.bus.publish(event)
    log.info("job.published", job_id=job.id, event_id=event["id"], type=event["type"])
    published = _record_published(relay, job, event["id"])
    wake_dependents(relay, published)
    return published


def _record_published(relay: Relay, job: Job, event_id: str) -> Job:
    """Record the event published. Two publishers of one outcome can race (a cancel and the ingest its task's late
    callback started both publish the cancellation): the event is the same, so the loser of the version check
    finds it recorded and answers the job as it now is, and a write that moved the job without touching its outcome
    is retried on the job as it now is."""
    for _ in range(_PUBLISH_ATTEMPTS):
        try:
            return relay.jobs.update(job.published(relay.clock(), event_id))
        except Conflict:
            current = relay.jobs.get(job.id)
            if event_id in current.event_ids:
                return current
            if current.outcome != job.outcome or current.terminal:
                raise
            job = current
    raise Conflict(f"job {job.id} kept changing while its event {event_id} was recorded; it is published again "
                   "on its next look")


def _event(relay: Relay, job: Job, now: float) -> dict[str, Any]:
    if job.model == STORYBOARD_MODEL and job.storyboard is not None and job.shot is None:
        return build_storyboard_event(job, now=now, source=SOURCE)
    return build_event(job, now=now, presign=relay.blobs.presign)


def wake_dependents(relay: Relay, job: Job) -> None:
    """Look again at each job waiting for ``job`` (now published); one that cannot be moved now is left to the
    reconciler."""
    for dependent in job.dependents:
        try:
            settle_waiting(relay, relay.jobs.get(dependent))
        except RelayError as exc:  # a race or a store that failed: the reconciler wakes it at its check_at
            log.info("dependency.wake_missed", job_id=dependent, dependency=job.id, code=exc.code)


def _blocking(relay: Relay, job: Job) -> tuple[str, Job | None] | None:
    """The first job ``job`` waits for that will never be published (``None`` in the pair: it is gone)."""
    for dependency in job.depends_on:
        try:
            found = relay.jobs.get(dependency)
        except NotFound:
            return dependency, None
        if found.status in NEVER_PUBLISHED or found.outcome not in (None, Outcome.COMPLETED):
            return dependency, found
    return None


def _failure(dependency: str, found: Job | None) -> dict[str, str]:
    if found is None:
        return {"code": "dependency_failed", "message": f"job {dependency} that it waits for is gone",
                "dependency": dependency}
    ended = found.status.value if found.terminal else str(found.outcome)
    cause = (found.error or {}).get("code") or ended
    return {"code": "dependency_failed", "dependency": dependency,
            "message": f"job {dependency} that it waits for ended {ended} ({cause}); it will never be published"}


def settle_waiting(relay: Relay, job: Job) -> str:
    """Move a ``waiting`` job on if it can: ``dependency_failed`` (a job it names will never be published: it fails,
    naming that job), ``ready`` (every job it names is published: it joins the queue and a worker is asked to admit
    it), or ``waiting`` (the reconciler looks again at its ``check_at``). Anything else: ``not_waiting``."""
    if job.status is not JobStatus.WAITING or job.outcome is not None:
        return "not_waiting"
    blocking = _blocking(relay, job)
    if blocking is not None:
        log.info("job.dependency_failed", job_id=job.id, dependency=blocking[0])
        conclude(relay, job, Outcome.FAILED, _failure(*blocking))
        return "dependency_failed"
    if any(relay.jobs.get(dependency).status is not JobStatus.PUBLISHED for dependency in job.depends_on):
        return "waiting"
    log.info("job.dependencies_ready", job_id=job.id, depends_on=list(job.depends_on))
    wait_in_queue(relay, relay.jobs.update(job.ready(relay.clock())))
    relay.ingest_queue.send({"job_id": None, "source": ADMISSION_MESSAGE})
    return "ready"


def _billed(job: Job) -> bool:
    """Whether EvoLink bills (or may bill) the job's task: one it completed, even if its result was never copied
    (``result_expired``, or a cancel that won the race); an expired job's if a task may exist; and a task the
    caller abandoned by cancelling, which EvoLink has no call to stop. Counting those keeps a budget from being
    passed by work EvoLink may still charge for; a failed task is never billed."""
    outcome = None if job.outcome is None else Outcome(job.outcome)
    abandoned = outcome is Outcome.CANCELLED and bool((job.error or {}).get("abandoned_task_id"))
    return (outcome is Outcome.COMPLETED or job.result_seen_at is not None or abandoned
            or (outcome is Outcome.EXPIRED and job.task_id is not None))


def _give_back(relay: Relay, job: Job) -> None:
    if job.hold_period is not None:
        settle_hold(relay.ledger, job.tenant, job.hold_period, job.id, used=job.credits_used,
                    reserved=job.credits_reserved, billed=_billed(job), held=job.credits_held)
    finished(relay, job)
