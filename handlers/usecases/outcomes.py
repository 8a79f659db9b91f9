"""Recording a job's outcome and publishing its one event.

Before the event goes out, what the job held is given back: its budget hold settles to what
EvoLink billed (nothing for a task that failed, was cancelled or was never created) and its slot
at EvoLink frees for the next queued job. Both are safe to repeat, so a publish that is retried
after a crash settles nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.app.relay import Relay
from handlers.base.logs import get_logger
from handlers.domain.events import build_event
from handlers.domain.jobs import Job, Outcome
from handlers.usecases.admission import finished
from handlers.usecases.budget import settle_hold

__all__ = ["conclude", "publish_outcome", "record_outcome"]

log = get_logger(__name__)


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
    """Settle what the job held, publish its outcome event (same id on every retry) and record it published."""
    event = build_event(job, now=relay.clock())
    if event["id"] in job.event_ids:
        return job
    _give_back(relay, job)
    relay.bus.publish(event)
    log.info("job.published", job_id=job.id, event_id=event["id"], type=event["type"])
    return relay.jobs.update(job.published(relay.clock(), event["id"]))


def _billed(job: Job) -> bool:
    """Whether EvoLink bills the job's task: a completed one; an expired one if a task may exist."""
    outcome = None if job.outcome is None else Outcome(job.outcome)
    return outcome is Outcome.COMPLETED or (outcome is Outcome.EXPIRED and job.task_id is not None)


def _give_back(relay: Relay, job: Job) -> None:
    if job.hold_period is not None:
        settle_hold(relay.ledger, job.tenant, job.hold_period, job.id, used=job.credits_used,
                    reserved=job.credits_reserved, billed=_billed(job), held=job.credits_held)
    finished(relay, job)
