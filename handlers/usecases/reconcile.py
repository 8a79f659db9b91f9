"""Reconcile: find jobs whose callback never came and feed them into the ingest path.

Runs every ``RELAY_RECONCILE_EVERY`` seconds. It reads only the store's due index
(``check_at <= now``) and never scans. For each due job, in order: a job past its ``cancel_after``
deadline is cancelled (reason ``deadline``); one past ``RELAY_EXPIRE_AFTER`` expires; a waiting job
is looked at again (its dependencies may have ended); a queued one waits on; an accepted one is
submitted (a new job whose create failed, or a retried job whose backoff is over); a running one whose
result is at risk publishes ``job.at_risk`` or fails with ``result_expired``
(:mod:`handlers.usecases.risk`), and every running one goes to the ingest queue to be read again.
"""

from __future__ import annotations

from collections import Counter

from handlers.app.relay import Relay
from handlers.base.errors import Conflict, RelayError
from handlers.base.logs import get_logger
from handlers.domain.jobs import Job, JobStatus, Outcome
from handlers.usecases.admission import reclaim
from handlers.usecases.cancel import CancelReason, cancel_job
from handlers.usecases.dependencies import recheck_waiting
from handlers.usecases.outcomes import conclude
from handlers.usecases.risk import check_result, next_look
from handlers.usecases.submit import admit_waiting, send_to_provider

__all__ = ["reconcile"]

log = get_logger(__name__)


def reconcile(relay: Relay, *, limit: int = 500) -> dict[str, int]:
    """One pass; returns counts by action (``enqueued``, ``expired``, ``resubmitted``, ``admitted``…).

    It first frees the slots of holders that died (expired leases) and admits the queued jobs the
    free slots allow, then looks at each due job."""
    counts: Counter[str] = Counter()
    counts["slots_reclaimed"] = reclaim(relay, lambda job: job.terminal or job.outcome is not None)
    counts["admitted"] = admit_waiting(relay)
    for job in relay.jobs.due(relay.clock(), limit):
        try:
            counts[_reconcile_one(relay, job)] += 1
        except Conflict:
            counts["raced"] += 1  # someone else moved the job on; it is due again later
        except RelayError as exc:  # a store or queue failed for this job: it stays due, the others still go
            log.warning("reconcile.job_failed", job_id=job.id, code=exc.code, error=exc.message)
            counts["failed"] += 1
    counts = +counts  # only what happened
    if counts:
        log.info("reconcile.pass", **counts)
    return dict(counts)


def _reconcile_one(relay: Relay, job: Job) -> str:
    now = relay.clock()
    if job.outcome is None and job.deadline_at is not None and now >= job.deadline_at:
        cancel_job(relay, job, CancelReason.DEADLINE)
        return "deadline"
    if job.outcome is None and now - job.created_at >= relay.settings.expire_after:
        conclude(relay, job, Outcome.EXPIRED, {"code": "expired",
                                               "message": "no final answer from the provider in time"})
        return "expired"
    if job.status is JobStatus.WAITING and job.outcome is None:
        return recheck_waiting(relay, job)
    if job.status is JobStatus.QUEUED:  # still waiting for a slot (the pass admitted what it could)
        relay.jobs.update(job.rescheduled(now, max(relay.throttle.blocked_until, now + relay.settings.reconcile_every)))
        return "still_queued"
    if job.status is JobStatus.ACCEPTED and job.outcome is None:
        return _submit(relay, job, now)
    risk, job = check_result(relay, job, now)
    if risk == "result_expired":
        return risk
    relay.jobs.update(job.rescheduled(now, next_look(relay, job, now)))
    relay.ingest_queue.send({"job_id": job.id, "task_id": None, "source": "reconciler"})
    return risk or "enqueued"


def _submit(relay: Relay, job: Job, now: float) -> str:
    """Submit an accepted job: a new one whose create failed, or a retried one whose backoff is over."""
    after = send_to_provider(relay, job)
    if after.version == job.version:  # another submitter holds the claim: look again later
        relay.jobs.update(job.rescheduled(now, now + relay.settings.reconcile_grace))
        return "claimed_elsewhere"
    if after.status is JobStatus.ACCEPTED:
        return "deferred"
    return "retried" if job.failed_tasks else "resubmitted"
