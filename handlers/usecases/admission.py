"""Admission: a job reaches EvoLink only with a free slot, and waits as ``queued`` without one.

With ``RELAY_MAX_IN_FLIGHT`` or ``RELAY_TENANT_MAX_IN_FLIGHT`` set, a job takes a slot
(:class:`~handlers.ports.SlotPool`, a lease) before its task is created, keeps it (renewed to the
job's deadline) while the task runs, and gives it back when the job ends. A job without a slot is
``queued``; each freed slot sends one ``admission`` message to the ingest queue, and the worker
that takes it admits the queued jobs the free slots allow, in the fair order of
:mod:`handlers.domain.admission`. The reconciler does the same for queued jobs whose time has
come, and frees the slots of holders that died (their leases expired).

A ``429`` from EvoLink puts the job back in the queue until the wait the process's
:class:`~handlers.domain.admission.Throttle` sets (``Retry-After``, or backoff with jitter),
and lowers the cap it admits under while ``429`` s continue. Without caps no slot is taken; a
``429`` still queues the job until the wait is over.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from handlers.app.relay import Relay
from handlers.base.errors import Conflict, NotFound, ProviderUnavailable
from handlers.base.logs import get_logger
from handlers.domain.admission import IN_FLIGHT_LIMIT, QueuedJob, admissible, queue_places
from handlers.domain.jobs import Job, JobStatus

__all__ = ["ADMISSION_MESSAGE", "ADMIT_LEASE", "QUEUE_SCAN", "admit", "admit_queued", "finished", "keep_slot",
           "limited", "places", "rate_limited", "reclaim", "running", "wait_in_queue"]

log = get_logger(__name__)
ADMIT_LEASE = 300.0  # seconds a slot is held before the task is created (a dead submitter's slot frees itself)
QUEUE_SCAN = 1000  # queued jobs read to pick the next ones fairly
ADMISSION_MESSAGE = "admission"  # the ``source`` of the ingest message that asks a worker to admit queued jobs
Submit = Callable[[Relay, Job], Job]


def limited(relay: Relay) -> bool:
    """Whether jobs take slots: a cap is configured."""
    return relay.settings.max_in_flight is not None or relay.settings.tenant_max_in_flight is not None


def _cap(relay: Relay) -> int:
    return min(relay.throttle.effective_cap(), relay.settings.max_in_flight or IN_FLIGHT_LIMIT)


def admit(relay: Relay, job: Job) -> bool:
    """Take a slot for ``job`` now, if the throttle lets a create through and a cap leaves room."""
    now = relay.clock()
    if relay.throttle.blocked(now):
        return False
    if not limited(relay):
        return True
    return relay.slots.acquire(job.id, job.tenant, now=now, until=now + ADMIT_LEASE, cap=_cap(relay),
                               tenant_cap=relay.settings.tenant_max_in_flight)


def wait_in_queue(relay: Relay, job: Job, reason: dict[str, str] | None = None) -> Job:
    """The job waits as ``queued``; the reconciler looks again when the throttle's wait is over (or soon)."""
    now = relay.clock()
    retry_at = max(relay.throttle.blocked_until, now + min(relay.settings.reconcile_grace, 60.0))
    log.info("job.queued", job_id=job.id, tenant=job.tenant, reason=(reason or {}).get("code", "no_slot"))
    return relay.jobs.update(job.queued(now, retry_at, reason))


def rate_limited(relay: Relay, job: Job, exc: ProviderUnavailable) -> Job:
    """EvoLink answered ``429``: give the slot back, slow down, and queue the job until the wait is over."""
    now = relay.clock()
    until = relay.throttle.on_rate_limited(now, exc.retry_after)
    if limited(relay):
        relay.slots.release(job.id)
    log.warning("job.rate_limited", job_id=job.id, retry_after=exc.retry_after, wait=round(until - now, 3),
                cap=relay.throttle.effective_cap())
    return wait_in_queue(relay, job, {"code": "rate_limited", "message": exc.message})


def running(relay: Relay, job: Job) -> None:
    """The task was created: the throttle hears of a success, and the slot is held to the job's deadline."""
    relay.throttle.on_success(relay.clock())
    keep_slot(relay, job)


def keep_slot(relay: Relay, job: Job) -> None:
    """Hold the job's slot to its deadline: its task runs at EvoLink, or may (a create whose outcome is unknown)."""
    if limited(relay):
        relay.slots.renew(job.id, now=relay.clock(), until=job.created_at + relay.settings.expire_after)


def finished(relay: Relay, job: Job) -> None:
    """The job ended: its slot (if it held one) is free, and a worker is asked to admit the next queued jobs."""
    if not limited(relay):
        return
    relay.slots.release(job.id)
    relay.ingest_queue.send({"job_id": None, "source": ADMISSION_MESSAGE})


def _in_flight(relay: Relay) -> Counter[str]:
    return Counter(lease.tenant for lease in relay.slots.leases(relay.clock())) if limited(relay) else Counter()


def _queued(relay: Relay) -> list[QueuedJob]:
    return [QueuedJob(job.id, job.tenant, job.created_at) for job in relay.jobs.queued(QUEUE_SCAN)]


def places(relay: Relay) -> dict[str, int]:
    """Each queued job's place in the queue (1: next), in the fair order."""
    return queue_places(_queued(relay), _in_flight(relay))


def admit_queued(relay: Relay, submit: Submit) -> int:
    """Admit the queued jobs the free slots allow, in the fair order, and submit each; return how many."""
    now = relay.clock()
    if relay.throttle.blocked(now):
        return 0
    in_flight = _in_flight(relay)
    free = _cap(relay) - sum(in_flight.values()) if limited(relay) else IN_FLIGHT_LIMIT
    chosen = admissible(_queued(relay), in_flight, free=max(free, 0),
                        tenant_cap=relay.settings.tenant_max_in_flight)
    admitted = 0
    for queued in chosen:
        admitted += _admit_one(relay, queued.job_id, submit)
    return admitted


def _admit_one(relay: Relay, job_id: str, submit: Submit) -> int:
    try:
        job = relay.jobs.get(job_id)
        if job.status is not JobStatus.QUEUED or not admit(relay, job):
            return 0
        job = relay.jobs.update(job.admitted(relay.clock()))
    except (Conflict, NotFound):
        # Another worker admitted (or moved) it first. The slot is keyed by the job, so it is that worker's
        # slot too: keep it. A job that left the queue otherwise frees it when its lease ends.
        return 0
    submit(relay, job)
    return 1


def reclaim(relay: Relay, ended: Callable[[Job], bool]) -> int:
    """Free the slots whose holders died: expired leases of jobs that ended or never got their task; a job whose
    task still runs gets its slot back. Returns how many slots were freed."""
    if not limited(relay):
        return 0
    now, freed = relay.clock(), 0
    for lease in relay.slots.expired(now):
        try:
            job = relay.jobs.get(lease.job_id)
        except NotFound:
            job = None
        if job is not None and not ended(job) and (job.task_id is not None or job.unknown_outcome):
            relay.slots.acquire(job.id, job.tenant, now=now, until=job.created_at + relay.settings.expire_after,
                                cap=IN_FLIGHT_LIMIT, tenant_cap=None)
            continue
        relay.slots.release(lease.job_id)
        freed += 1
    if freed:
        log.info("slots.reclaimed", freed=freed)
    return freed
