"""Reconcile: find jobs whose callback never came and feed them into the ingest path.

Runs every ``RELAY_RECONCILE_EVERY`` seconds. It reads only the store's due index
(``check_at <= now``) and never scans.
"""

from __future__ import annotations

from collections import Counter

from handlers.app.relay import Relay
from handlers.base.errors import Conflict
from handlers.base.logs import get_logger
from handlers.domain.jobs import Job, JobStatus, Outcome
from handlers.usecases.admission import reclaim
from handlers.usecases.outcomes import conclude
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
    counts = +counts  # only what happened
    if counts:
        log.info("reconcile.pass", **counts)
    return dict(counts)


def _reconcile_one(relay: Relay, job: Job) -> str:
    now = relay.clock()
    if job.outcome is None and now - job.created_at >= relay.settings.expire_after:
        conclude(relay, job, Outcome.EXPIRED, {"code": "expired",
                                               "message": "no final answer from the provider in time"})
        return "expired"
    if job.status is JobStatus.QUEUED:  # still waiting for a slot (the pass admitted what it could)
        relay.jobs.update(job.rescheduled(now, max(relay.throttle.blocked_until, now + relay.settings.reconcile_every)))
        return "still_queued"
    if job.status is JobStatus.ACCEPTED and job.outcome is None:
        after = send_to_provider(relay, job)
        if after.version == job.version:  # another submitter holds the claim: look again later
            relay.jobs.update(job.rescheduled(now, now + relay.settings.reconcile_grace))
            return "claimed_elsewhere"
        return "deferred" if after.status is JobStatus.ACCEPTED else "resubmitted"
    next_check = now + relay.settings.reconcile_every
    if job.outcome is None:
        next_check = min(next_check, job.created_at + relay.settings.expire_after)
    relay.jobs.update(job.rescheduled(now, next_check))
    relay.ingest_queue.send({"job_id": job.id, "task_id": None, "source": "reconciler"})
    return "enqueued"
