"""Recording a job's outcome and publishing its one event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.app.relay import Relay
from handlers.base.logs import get_logger
from handlers.domain.events import build_event
from handlers.domain.jobs import OUTCOME_STATUS, Job

__all__ = ["conclude", "publish_outcome"]

log = get_logger(__name__)


def conclude(relay: Relay, job: Job, outcome: str, error: Mapping[str, Any] | None) -> Job:
    """Record an outcome without outputs (failed, cancelled, expired, rejected) and publish it.

    The job keeps its status until the event is out, so a job that reads as final always has
    its event published; a crash in between leaves ``check_at`` set for the reconciler.
    """
    now = relay.clock()
    job = relay.jobs.update(job.evolve(
        now, outcome=outcome, error=dict(error or {}) or None,
        finished_at=now, check_at=now, lease_owner=None, lease_until=None))
    return publish_outcome(relay, job)


def publish_outcome(relay: Relay, job: Job) -> Job:
    """Publish the job's outcome event (same id on every retry) and record it published."""
    event = build_event(job, now=relay.clock())
    if event["id"] in job.event_ids:
        return job
    relay.bus.publish(event)
    log.info("job.published", job_id=job.id, event_id=event["id"], type=event["type"])
    outcome = job.outcome or "completed"
    return relay.jobs.update(job.evolve(
        relay.clock(), status=OUTCOME_STATUS[outcome], event_ids=(*job.event_ids, event["id"]),
        check_at=None, lease_owner=None, lease_until=None))
