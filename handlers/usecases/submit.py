"""Submit: validate, create the job idempotently, call the provider exactly once.

A job id is derived from the caller's tenant and channel (``scope``) and its ``Idempotency-Key``
(else a hash of the request), so a repeat finds the same job and never submits twice, and two
tenants using the same key never meet. Before calling the
provider the submitter claims the job with a conditional write; a claim that is older than
``SUBMIT_LEASE`` without a task id means an earlier attempt died mid-call: its outcome is
unknown and the job waits for the callback (which names the task) instead of resubmitting.

A request may name outputs of the tenant's earlier jobs (``job://JOB_ID/output-0``, ``…/poster``,
``…/last-frame``, see :mod:`handlers.usecases.references`). A job whose references are all published is
sent at once, each reference replaced by a short-lived URL of the file; one whose references are still on
their way is created ``waiting`` and sent when they are published (:mod:`handlers.usecases.dependencies`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from handlers.app.relay import Relay
from handlers.base.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RelayError,
    UnknownOutcome,
    Violation,
)
from handlers.base.logs import get_logger
from handlers.domain.contract import METADATA_MAX_BYTES, MODELS, VIDEO
from handlers.domain.jobrequest import check_cancel_after, check_metadata
from handlers.domain.jobs import Job, JobStatus, Outcome, derive_job_id, request_fingerprint
from handlers.domain.pricing import estimate
from handlers.domain.tenancy import DEFAULT_TENANT
from handlers.provider.evolink.task import Task
from handlers.provider.validation import check_request
from handlers.usecases.admission import admit, admit_queued, keep_slot, rate_limited, running, wait_in_queue
from handlers.usecases.assembly import ASSEMBLY_MESSAGE, is_storyboard_job
from handlers.usecases.budget import budget_for, take_hold
from handlers.usecases.dependencies import wait_for
from handlers.usecases.estimate import Estimator, estimator_for, reference_lengths
from handlers.usecases.outcomes import conclude
from handlers.usecases.references import (
    References,
    ReferenceUnavailable,
    check_references,
    provider_request,
    total_violations,
)

__all__ = ["METADATA_MAX_BYTES", "SUBMIT_LEASE", "IdempotencyKeyReused", "Submission", "admit_waiting", "job_id_for",
           "record_rejection", "send_to_provider", "start", "submit", "submit_job"]

log = get_logger(__name__)
SUBMIT_LEASE = 300.0
_RECORD_ATTEMPTS = 5
_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,255}$")


def _check_extras(metadata: object, idempotency_key: str | None, cancel_after: object = None) -> list[Violation]:
    problems = check_metadata(metadata) + check_cancel_after(cancel_after)
    if idempotency_key is not None and not _KEY.match(idempotency_key):
        problems.append(Violation("Idempotency-Key", "invalid_format",
                                  "Idempotency-Key must be 1-255 characters of A-Z a-z 0-9 . _ : -"))
    return problems


class IdempotencyKeyReused(Conflict):
    """The ``Idempotency-Key`` was used before, by the same caller, with another request (answered 409): the error
    names that earlier job (``job_id``), so the caller can find it without listing its jobs."""

    code = "idempotency_key_reused"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"this Idempotency-Key was already used with a different request, by job {job_id}")
        self.job_id = job_id

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "job_id": self.job_id}


class Submission(NamedTuple):
    """The job a submission created or found; ``replayed`` when it was found (an earlier submit made it)."""

    job: Job
    replayed: bool


def submit(relay: Relay, request: Mapping[str, Any], *, metadata: Mapping[str, Any] | None = None,
           idempotency_key: str | None = None, scope: str = "", tenant: str = DEFAULT_TENANT,
           cancel_after: int | None = None) -> Job:
    """Create (or find) the job for ``request`` and make sure the provider has it; ``cancel_after`` seconds
    from now it is cancelled if it has not ended (the reconciler does it)."""
    return submit_job(relay, request, metadata=metadata, idempotency_key=idempotency_key, scope=scope,
                      tenant=tenant, cancel_after=cancel_after).job


def submit_job(relay: Relay, request: Mapping[str, Any], *, metadata: Mapping[str, Any] | None = None,
               idempotency_key: str | None = None, scope: str = "", tenant: str = DEFAULT_TENANT,
               cancel_after: int | None = None, storyboard: str | None = None,
               shot: str | None = None) -> Submission:
    """:func:`submit`, also saying whether the job already existed (a replay: it keeps its first deadline).
    ``storyboard`` and ``shot`` name the storyboard (and its shot) the job is part of."""
    metadata = {} if metadata is None else metadata
    problems = _check_extras(metadata, idempotency_key, cancel_after)
    try:
        check_request(request, allow_http=relay.settings.uses_sandbox, callback="forbidden", references=True)
    except InvalidRequest as exc:
        problems = [*exc.violations, *problems]
    if problems:
        raise InvalidRequest(problems)
    references = check_references(relay, tenant, request)
    fingerprint = request_fingerprint(request, metadata)
    job_id = job_id_for(tenant, scope, idempotency_key, fingerprint)
    estimated = _estimate(relay, tenant, request, references)
    hold = take_hold(relay.ledger, relay.settings.budgets, tenant, job_id, estimated, relay.clock())
    now = relay.clock()
    fresh = Job(
        id=job_id, request=dict(request), fingerprint=fingerprint, created_at=now, updated_at=now,
        metadata=dict(metadata), tenant=tenant, idempotency_key=idempotency_key, model=str(request["model"]),
        credits_estimated=estimated, credits_held=hold.held, hold_period=hold.period,
        check_at=now + relay.settings.reconcile_grace, deadline_at=None if cancel_after is None else now + cancel_after,
        storyboard=storyboard, shot=shot)
    if references.pending:
        fresh = fresh.waited(now, references.pending, now + relay.settings.reconcile_grace)
    try:
        job = relay.jobs.create(fresh)
    except RelayError:
        relay.ledger.settle(tenant, hold.period, job_id, 0.0)  # no job: give the hold back
        raise
    if job.fingerprint != fingerprint:
        raise IdempotencyKeyReused(job.id)
    replayed = job != fresh  # the store answers the stored job: ours only if it was not there yet
    try:
        if job.status is JobStatus.WAITING and not replayed:
            return Submission(wait_for(relay, job), replayed)
        return Submission(start(relay, job) if job.status is JobStatus.ACCEPTED else job, replayed)
    except Conflict:  # the reconciler, or a repeat of this submit, moved the job on meanwhile: it is handled
        return Submission(relay.jobs.get(job.id), replayed)


def job_id_for(tenant: str, scope: str, idempotency_key: str | None, fingerprint: str) -> str:
    """The id :func:`submit_job` gives a submission of ``tenant`` through channel ``scope``."""
    return derive_job_id(_scope(tenant, scope), idempotency_key, fingerprint)


def _estimate(relay: Relay, tenant: str, request: Mapping[str, Any], references: References) -> float:
    """The job's estimated credits. Referenced outputs count at their real length (their media facts, or the
    duration their job asked for). Other reference videos are probed for their length when the tenant has a
    budget (then the estimate decides) or when the total of a request naming earlier outputs needs them;
    otherwise each counts at the worst case the rules allow. More than 15 s of reference video in all, counting
    referenced outputs, is refused."""
    known = references.video_seconds()
    budgeted = budget_for(tenant, relay.settings.budgets, relay.ledger) is not None
    mixed = bool(known) and len(known) < len(request.get(VIDEO.array) or [])
    estimator = estimator_for(relay, relay.prices) if budgeted or mixed else Estimator(relay.prices)
    lengths, _ = reference_lengths(estimator, request, known)
    if known and (problems := total_violations(lengths, references)):
        raise InvalidRequest(problems)
    return estimate(request, lengths, relay.prices).credits


def start(relay: Relay, job: Job) -> Job:
    """Send an accepted job to the provider if it gets a slot; otherwise it waits its turn as ``queued``."""
    return send_to_provider(relay, job) if admit(relay, job) else wait_in_queue(relay, job)


def admit_waiting(relay: Relay) -> int:
    """Admit and submit the queued jobs the free slots allow (see :mod:`handlers.usecases.admission`)."""
    return admit_queued(relay, send_to_provider)


def send_to_provider(relay: Relay, job: Job) -> Job:
    """Create the provider task for an accepted job, at most once."""
    if is_storyboard_job(job):  # the relay is its provider: an ingest worker joins the shots (the CPU is there)
        relay.ingest_queue.send({"job_id": job.id, "task_id": None, "source": ASSEMBLY_MESSAGE})
        return job
    now = relay.clock()
    if job.submit_claimed_at is not None:
        if now - job.submit_claimed_at < SUBMIT_LEASE:
            return job  # another submitter is on it
        return _unknown(relay, job, "an earlier submission attempt stopped mid-call")
    claimed = job.claimed(now)
    try:
        job = relay.jobs.update(claimed)
    except Conflict:
        return relay.jobs.get(job.id)
    return _call_provider(relay, job)


def _call_provider(relay: Relay, job: Job) -> Job:
    try:
        body = {**provider_request(relay, job), "callback_url": relay.callback_url(job.id)}
    except (ReferenceUnavailable, NotFound) as exc:  # a referenced job lacks the file it names: never sendable
        log.warning("job.reference_unavailable", job_id=job.id, error=exc.message)
        return conclude(relay, job, Outcome.FAILED, {"code": "dependency_failed", "message": exc.message})
    log.debug("job.submitting", job_id=job.id, attempt=job.attempts)
    try:
        task = relay.provider.create_task(body, idempotency_key=job.id)
    except UnknownOutcome as exc:
        return _unknown(relay, job, exc.message)
    except ProviderRejected as exc:
        log.warning("job.rejected", job_id=job.id, code=exc.code, status=exc.status)
        outcome = Outcome.FAILED if exc.status == 402 else Outcome.REJECTED  # the account's fault, not the request's
        return conclude(relay, job, outcome, {**exc.as_dict(), "provider_code": exc.code})
    except ProviderUnavailable as exc:
        if exc.status == 429:
            return rate_limited(relay, job, exc)
        log.warning("job.submit_deferred", job_id=job.id, code=exc.code, status=exc.status)
        now = relay.clock()
        return relay.jobs.update(job.deferred(now, exc.as_dict(), now + min(relay.settings.reconcile_grace, 60.0)))
    except ProviderError as exc:  # a 2xx we cannot read: the task may well exist
        return _unknown(relay, job, exc.message)
    log.info("job.submitted", job_id=job.id, task_id=task.id, estimated_time=task.estimated_time)
    running(relay, job)
    return _record_task(relay, job, task)


def _record_task(relay: Relay, job: Job, task: Task) -> Job:
    """Write the created task onto the job. A create can take long (EvoLink's 429s waited out), and the
    reconciler may have touched the job meanwhile: then the write is made again on the job as it now is. If
    it was marked unconfirmed, the task resolves it; if it already names the task, nothing is left to do."""
    for _ in range(_RECORD_ATTEMPTS):
        now = relay.clock()
        try:
            if job.status is JobStatus.SUBMITTED and job.unknown_outcome and job.task_id is None:
                return relay.jobs.update(job.resolved(now, task.id, estimated_time=task.estimated_time))
            if job.task_id is not None or job.status is not JobStatus.ACCEPTED:
                return job
            return relay.jobs.update(job.submitted(
                now, task.id, estimated_time=task.estimated_time, credits_reserved=task.credits_reserved,
                check_at=min(now + (task.estimated_time or 0) + relay.settings.reconcile_grace,
                             job.created_at + relay.settings.expire_after)))
        except Conflict:
            job = relay.jobs.get(job.id)
    raise Conflict(f"job {job.id}: task {task.id} could not be recorded; its callback will record it")


def _unknown(relay: Relay, job: Job, reason: str) -> Job:
    """The provider may or may not have a task: wait for its callback, never resubmit blindly."""
    now = relay.clock()
    log.warning("job.outcome_unknown", job_id=job.id, reason=reason)
    job = relay.jobs.update(job.unconfirmed(now, reason, check_at=job.created_at + relay.settings.expire_after))
    keep_slot(relay, job)  # the task may be running at EvoLink
    return job


def _scope(tenant: str, scope: str) -> str:
    """The namespace of job ids: the tenant, and the channel the request came through."""
    return f"{tenant}/{scope}"


def record_rejection(relay: Relay, request: object, *, metadata: object, idempotency_key: str | None,
                     scope: str, error: RelayError, tenant: str = DEFAULT_TENANT) -> Job:
    """For callers with no HTTP answer (the requests queue): a rejected job and its event."""
    body = dict(request) if isinstance(request, Mapping) else {}
    meta = dict(metadata) if isinstance(metadata, Mapping) and not _check_extras(metadata, None) else {}
    fingerprint = request_fingerprint(body, meta)
    now = relay.clock()
    job = relay.jobs.create(Job(
        id=derive_job_id(_scope(tenant, scope), idempotency_key, fingerprint), request=body, fingerprint=fingerprint,
        created_at=now, updated_at=now, metadata=meta, idempotency_key=idempotency_key, tenant=tenant,
        model=body["model"] if body.get("model") in MODELS else None, check_at=now))
    if job.outcome is not None:
        return job
    return conclude(relay, job, Outcome.REJECTED, error.as_dict())
