"""Jobs that wait for earlier jobs: how a waiting job is woken, and how a missed wake-up is caught.

A job whose ``job://`` references name jobs that are not published yet is created ``waiting`` with
``depends_on`` (:meth:`~handlers.domain.jobs.Job.waited`). The index of who waits for whom is kept on the
referenced jobs themselves: :func:`wait_for` records the waiting job in each one's ``dependents``
(:meth:`~handlers.domain.jobs.Job.noted_dependent`, a conditional write on that job's version, on SQLite and
DynamoDB alike), so no store needs a query by ``depends_on`` and nothing else has to be kept in step.
Publishing a job's event then wakes its dependents (:func:`handlers.usecases.outcomes.wake_dependents`):
the relay reacts to its own events, in whichever process published them, the same way on both backends.

The order makes the race harmless: the waiting job is stored first, then noted on each job it names, then
looked at once more. A job that publishes before it was noted is seen published by that last look; one noted
before it publishes carries the dependent in the very version its publish writes. What still slips through
(a crash between two writes) is caught by the reconciler, which calls :func:`recheck_waiting` for each waiting
job when its ``check_at`` comes.

A cycle cannot happen: a job can only name jobs that already exist when it is submitted, and a job's request
never changes, so every job waits only for jobs older than itself.
"""

from __future__ import annotations

from handlers.app.relay import Relay
from handlers.base.errors import Conflict, NotFound
from handlers.base.logs import get_logger
from handlers.domain.jobs import Job
from handlers.usecases.outcomes import settle_waiting

__all__ = ["recheck_waiting", "wait_for"]

log = get_logger(__name__)
_NOTE_ATTEMPTS = 5


def _note(relay: Relay, dependency: str, dependent: str) -> None:
    """Record ``dependent`` on job ``dependency`` (nothing once it is final: then it wakes nobody, and the
    dependent's own look sees it final)."""
    for _ in range(_NOTE_ATTEMPTS):
        try:
            job = relay.jobs.get(dependency)
        except NotFound:
            return
        if job.terminal or dependent in job.dependents:
            return
        try:
            relay.jobs.update(job.noted_dependent(relay.clock(), dependent))
            return
        except Conflict:
            continue
    log.warning("dependency.not_noted", job_id=dependent, dependency=dependency)  # the reconciler wakes it


def wait_for(relay: Relay, job: Job) -> Job:
    """Note the waiting ``job`` on each job it names, then look at it once more (a dependency may have been
    published, or failed, meanwhile). Returns the job as it is then."""
    for dependency in job.depends_on:
        _note(relay, dependency, job.id)
    try:
        settle_waiting(relay, relay.jobs.get(job.id))
    except Conflict:  # a dependency's event woke it at the same moment: that waker moves it on
        log.info("dependency.woken_elsewhere", job_id=job.id)
    return relay.jobs.get(job.id)


def recheck_waiting(relay: Relay, job: Job) -> str:
    """The reconciler's look at a waiting job whose ``check_at`` came: note it again where that was missed, then
    settle it (``ready``, ``dependency_failed``, or ``waiting``: looked at again after ``RELAY_RECONCILE_EVERY``)."""
    for dependency in job.depends_on:
        _note(relay, dependency, job.id)
    verdict = settle_waiting(relay, job)
    if verdict == "waiting":
        now = relay.clock()
        relay.jobs.update(job.rescheduled(now, now + relay.settings.reconcile_every))
    return verdict
