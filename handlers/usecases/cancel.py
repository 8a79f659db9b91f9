"""Cancel a job that has not ended: by its caller (``DELETE /v1/jobs/{id}``) or at its deadline (``cancel_after``).

A job that is ``accepted``, ``queued`` or ``waiting`` has no task at EvoLink: it is cancelled at once.
One that is ``submitted`` or ``processing`` is cancelled by abandoning its task: EvoLink documents no
cancel call, so the task runs on there, **and EvoLink may still bill it**. Either way the job records the
outcome ``cancelled`` (a conditional write on its version) and publishes one ``job.cancelled`` event;
publishing gives back its slot and its budget hold, and fails the jobs waiting for it
(``dependency_failed``).

Cancel and completion can arrive together: whichever records its outcome first wins, the other's
write fails its version check, and the loser finds the outcome recorded. So a job ends in exactly one
terminal state with one event. A cancel that loses (the job is ended, or its outcome is already
recorded: stored, failed…) is refused with :class:`JobEnded` (``409 job_ended``, naming the status).
A late callback or reconciler pass for a cancelled job only records that it came
(:func:`handlers.usecases.ingest.late_callback_key`) and, if the cancellation's event is not out yet, publishes
that same event: it never stores a result. When it publishes before the cancel does, the cancel finds the event
recorded and answers the cancelled job.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from handlers.app.relay import Relay
from handlers.base.errors import Conflict
from handlers.base.logs import get_logger
from handlers.domain.jobs import Job, Outcome
from handlers.usecases.outcomes import publish_outcome, record_outcome

__all__ = ["CancelReason", "JobEnded", "cancel", "cancel_job", "cancellation"]

log = get_logger(__name__)
_ATTEMPTS = 5


class CancelReason(StrEnum):
    """Who cancelled the job: the ``reason`` in its error."""

    CALLER = "caller"
    DEADLINE = "deadline"


_MESSAGES = {
    CancelReason.CALLER: "cancelled by its caller",
    CancelReason.DEADLINE: "its cancel_after deadline passed",
}


class JobEnded(Conflict):
    """The job has ended, or its outcome is recorded: it cannot be cancelled (answered ``409``)."""

    code = "job_ended"

    def __init__(self, job: Job) -> None:
        self.status = job.status.value
        self.outcome = None if job.outcome is None else Outcome(job.outcome).value
        ended = self.status if job.terminal else f"{self.status}, outcome {self.outcome} recorded"
        super().__init__(f"job {job.id} has already ended ({ended}); it cannot be cancelled")

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "status": self.status, "outcome": self.outcome}


def cancellation(job: Job, reason: CancelReason) -> dict[str, Any]:
    """The error a cancelled job records: ``cancelled``, who did it, and the task it abandoned (if any)."""
    error: dict[str, Any] = {"code": "cancelled", "reason": reason.value, "message": _MESSAGES[reason]}
    if job.task_id is not None or job.unknown_outcome:
        error["message"] += "; its task at EvoLink was abandoned and may still be billed"
        error["abandoned_task_id"] = job.task_id
    return error


def cancel(relay: Relay, job_id: str, reason: CancelReason = CancelReason.CALLER) -> Job:
    """Cancel job ``job_id`` (``NotFound`` if there is none); see :func:`cancel_job`."""
    return cancel_job(relay, relay.jobs.get(job_id), reason)


def cancel_job(relay: Relay, job: Job, reason: CancelReason = CancelReason.CALLER) -> Job:
    """Record the outcome ``cancelled`` and publish its event; :class:`JobEnded` if the job ended first."""
    for _ in range(_ATTEMPTS):
        if job.terminal or job.outcome is not None:
            raise JobEnded(job)
        try:
            job = record_outcome(relay, job, Outcome.CANCELLED, cancellation(job, reason))
        except Conflict:
            job = relay.jobs.get(job.id)  # something moved it on: look again
            continue
        log.info("job.cancelled", job_id=job.id, reason=reason.value, status=job.status.value, task_id=job.task_id)
        return publish_outcome(relay, job)
    raise Conflict(f"job {job.id} kept changing while it was cancelled; try again")
