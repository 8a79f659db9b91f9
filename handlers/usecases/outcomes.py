"""Recording a job's outcome and publishing its one event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.app.relay import Relay
from handlers.base.logs import get_logger
from handlers.domain.events import build_event
from handlers.domain.jobs import Job, Outcome

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
    """Publish the job's outcome event (same id on every retry) and record it published."""
    event = build_event(job, now=relay.clock())
    if event["id"] in job.event_ids:
        return job
    relay.bus.publish(event)
    log.info("job.published", job_id=job.id, event_id=event["id"], type=event["type"])
    return relay.jobs.update(job.published(relay.clock(), event["id"]))
