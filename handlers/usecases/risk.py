"""Results at risk: a task EvoLink completed whose result is still not copied as its URLs near their expiry.

EvoLink's result URLs expire 24 hours after the task completed (:data:`RESULT_URL_TTL`). The relay
knows the task completed when it first reads it so (``result_seen_at``, stamped by the first lease to
copy it); the task completed then or a little earlier, so its URLs expire by ``result_seen_at`` + 24 h
at the latest. The reconciler looks at every job whose copy has not succeeded (it keeps retrying the
copy through the ingest queue) and:

* ``RELAY_AT_RISK_AFTER`` (20 h by default) after ``result_seen_at``, publishes ``job.at_risk`` once
  (its id is derived from the job id, so a pass that stops half way publishes the same event again,
  and the bus fans it out once), records ``at_risk_at`` and counts it (``relay_jobs_at_risk``, the
  ``JobsAtRisk`` figure an alarm watches);
* past the expiry, fails the job with ``result_expired``: no copy can succeed any more.
"""

from __future__ import annotations

from handlers.app.relay import Relay
from handlers.base.logs import get_logger
from handlers.domain.events import build_at_risk_event
from handlers.domain.jobs import Job, JobStatus, Outcome, rfc3339
from handlers.usecases.outcomes import conclude

__all__ = ["RESULT_URL_TTL", "check_result", "expires_at", "next_look"]

log = get_logger(__name__)
RESULT_URL_TTL = 24 * 3600.0
"""How long EvoLink keeps a completed task's result URLs valid, in seconds."""
_RUNNING = (JobStatus.SUBMITTED, JobStatus.PROCESSING)


def expires_at(job: Job) -> float | None:
    """When the job's result URLs expire at the latest; ``None`` until the relay has read its task completed."""
    return None if job.result_seen_at is None else job.result_seen_at + RESULT_URL_TTL


def check_result(relay: Relay, job: Job, now: float) -> tuple[str | None, Job]:
    """``result_expired`` (the job failed), ``at_risk`` (its event went out now), or ``None`` (nothing to do);
    and the job as it is now."""
    expiry = expires_at(job)
    if expiry is None or job.outcome is not None or job.status not in _RUNNING:
        return None, job
    if now >= expiry:
        log.error("job.result_expired", job_id=job.id, task_id=job.task_id, expired_at=rfc3339(expiry))
        job = conclude(relay, job, Outcome.FAILED, {
            "code": "result_expired", "message": f"the result was not copied before its URLs expired "
                                                 f"({rfc3339(expiry)}, 24 h after EvoLink completed the task)"})
        relay.metrics.result_expired()
        return "result_expired", job
    if job.at_risk_at is None and now >= (job.result_seen_at or now) + relay.settings.at_risk_after:
        relay.bus.publish(build_at_risk_event(job, now=now, expires_at=expiry))
        job = relay.jobs.update(job.at_risk(now, now))
        relay.metrics.job_at_risk()
        log.error("job.at_risk", job_id=job.id, task_id=job.task_id, expires_at=rfc3339(expiry))
        return "at_risk", job
    return None, job


def next_look(relay: Relay, job: Job, now: float) -> float:
    """When the reconciler looks at an unfinished job again: after ``RELAY_RECONCILE_EVERY``, and no later than
    its expiry, its result's at-risk time or the expiry of its result's URLs."""
    looks = [now + relay.settings.reconcile_every]
    if job.outcome is None:
        looks.append(job.created_at + relay.settings.expire_after)
    expiry = expires_at(job)
    if expiry is not None and job.outcome is None:
        looks.append(expiry)
        if job.at_risk_at is None:
            looks.append((job.result_seen_at or now) + relay.settings.at_risk_after)
    return max(min(looks), now)
