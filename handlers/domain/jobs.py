"""The job: one generation request, its provider task, its stored outputs and its events.

A job changes only through its named transitions (``claimed``, ``submitted``, ``progressed``,
``leased``, ``stored``, ``concluded``, ``published``…), each stamped with the time it happened and
each checked against the lifecycle table (:mod:`handlers.domain.lifecycle`), which refuses a move it
does not list with :class:`~handlers.domain.lifecycle.InvalidTransition`. ``check_at`` is set while
the job still needs work (the reconciler's index) and cleared once its event is published. The store
writes every change conditionally on ``version``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from handlers.domain.lifecycle import OUTCOME_STATUS, TERMINAL, InvalidTransition, JobStatus, Outcome, Step, find_move
from handlers.domain.tenancy import DEFAULT_TENANT

__all__ = ["OUTCOME_STATUS", "TERMINAL", "Job", "JobStatus", "Outcome", "Output", "derive_job_id", "output_url",
           "request_fingerprint", "rfc3339"]


@dataclass(frozen=True, slots=True)
class Output:
    """One stored result; ``media`` (what the file is), ``checks`` (the media against the request) and
    ``frames`` (role → URI of the poster, last frame and their thumbnails) once it has been described."""

    uri: str
    key: str
    size: int
    sha256: str
    content_type: str = "video/mp4"
    media: Mapping[str, Any] | None = None
    checks: tuple[Mapping[str, Any], ...] = ()
    frames: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["checks"] = [dict(check) for check in self.checks]
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Output:
        data = dict(record)
        data["checks"] = tuple(data.get("checks") or ())
        data["frames"] = dict(data.get("frames") or {})
        return cls(**data)

    def frame_key(self, role: str) -> str:
        """Where the picture ``role`` (``poster``, ``last-frame``…) of this video is kept: beside it,
        ``jobs/{id}/output-0.mp4`` → ``jobs/{id}/output-0.poster.jpg``."""
        return f"{self.key.removesuffix('.mp4')}.{role}.jpg"

    def public(self, job_id: str, index: int) -> dict[str, Any]:
        """The output as the HTTP API shows it: with its route's ``url``, and a route for each stored picture."""
        url = output_url(job_id, index)
        return {**self.as_dict(), "url": url, "frame_urls": {role: f"{url}/{role}" for role in self.frames}}


def rfc3339(timestamp: float) -> str:
    """Unix seconds as RFC 3339 in UTC with ``Z`` and microseconds: ``2026-11-25T18:22:55.783569Z``.

    The one timestamp form of the API's jobs and of every event.
    """
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _rfc3339_or_none(timestamp: float | None) -> str | None:
    return None if timestamp is None else rfc3339(timestamp)


def output_url(job_id: str, index: int) -> str:
    """The relay's route for output ``index`` of a job: ``/v1/jobs/{job_id}/outputs/{index}``."""
    return f"/v1/jobs/{quote(job_id, safe='')}/outputs/{index}"


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_fingerprint(request: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    """sha256 of the canonical request and metadata: equal requests, equal fingerprints."""
    return hashlib.sha256(canonical_json({"r": request, "m": metadata}).encode()).hexdigest()


def derive_job_id(scope: str, idempotency_key: str | None, fingerprint: str) -> str:
    """A job id that a repeat of the same submission derives again (so it never submits twice)."""
    basis = f"key:{idempotency_key}" if idempotency_key else f"hash:{fingerprint}"
    digest = hashlib.sha256(f"{scope}\x00{basis}".encode()).hexdigest()
    return f"job_{digest[:26]}"


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    request: Mapping[str, Any]
    fingerprint: str
    created_at: float
    updated_at: float
    status: JobStatus = JobStatus.ACCEPTED
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tenant: str = DEFAULT_TENANT
    idempotency_key: str | None = None
    task_id: str | None = None
    model: str | None = None
    progress: int = 0
    estimated_time: int | None = None
    credits_reserved: float | None = None
    credits_estimated: float | None = None
    credits_held: float | None = None
    hold_period: str | None = None
    credits_used: float | None = None
    submitted_at: float | None = None
    finished_at: float | None = None
    outcome: Outcome | None = None
    error: Mapping[str, Any] | None = None
    outputs: tuple[Output, ...] = ()
    event_ids: tuple[str, ...] = ()
    other_tasks: tuple[str, ...] = ()
    unknown_outcome: bool = False
    submit_claimed_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    check_at: float | None = None
    attempts: int = 0
    failed_tasks: tuple[Mapping[str, Any], ...] = ()
    depends_on: tuple[str, ...] = ()
    dependents: tuple[str, ...] = ()
    storyboard: str | None = None
    shot: str | None = None
    deadline_at: float | None = None
    at_risk_at: float | None = None
    result_seen_at: float | None = None
    version: int = 0

    def __post_init__(self) -> None:
        # A job with a deadline (``cancel_after``) is looked at by its deadline at the latest, whatever move set
        # ``check_at``: the reconciler cancels it then.
        if self.deadline_at is not None and self.outcome is None and (self.check_at or 0) > self.deadline_at:
            object.__setattr__(self, "check_at", self.deadline_at)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["status"] = self.status.value
        record["outcome"] = None if self.outcome is None else Outcome(self.outcome).value
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Job:
        data = dict(record)
        data["status"] = JobStatus(data["status"])
        data["outcome"] = None if data.get("outcome") is None else Outcome(data["outcome"])
        data["outputs"] = tuple(Output.from_record(o) for o in data.get("outputs") or ())
        for name in ("event_ids", "other_tasks", "depends_on", "dependents"):
            data[name] = tuple(data.get(name) or ())
        data["failed_tasks"] = tuple(dict(t) for t in data.get("failed_tasks") or ())
        return cls(**data)

    # --- transitions (the rows of handlers.domain.lifecycle.MOVES) -------------------------------

    def _check(self, step: Step, *, to: JobStatus | None = None, records: Outcome | None = None) -> None:
        """Raise ``InvalidTransition`` unless the table allows ``step`` (to ``to``, recording ``records``) now."""
        if find_move(step, self.status, self.outcome, target=to, records=records) is None:
            raise InvalidTransition(self.id, step, self.status, to or self.status, self.outcome)

    def queued(self, now: float, retry_at: float, reason: Mapping[str, Any] | None = None) -> Job:
        """No slot at EvoLink is free for the job (or EvoLink asked to slow down): it waits its turn, and the
        reconciler looks again at ``retry_at`` at the latest."""
        self._check(Step.QUEUED, to=JobStatus.QUEUED)
        return replace(self, updated_at=now, status=JobStatus.QUEUED, submit_claimed_at=None,
                       error=dict(reason) if reason else None, check_at=retry_at)

    def admitted(self, now: float) -> Job:
        """The queued job has a slot: it is accepted again, to be submitted at once."""
        self._check(Step.ADMITTED, to=JobStatus.ACCEPTED)
        return replace(self, updated_at=now, status=JobStatus.ACCEPTED, error=None, check_at=now)

    def waited(self, now: float, depends_on: tuple[str, ...], check_at: float) -> Job:
        """The request names outputs of the jobs ``depends_on`` that are not published yet: it waits for them
        (their events wake it; the reconciler looks again at ``check_at``)."""
        self._check(Step.WAITED, to=JobStatus.WAITING)
        return replace(self, updated_at=now, status=JobStatus.WAITING, depends_on=depends_on,
                       submit_claimed_at=None, check_at=check_at)

    def ready(self, now: float) -> Job:
        """Every job it waited for is published: it is accepted again, to be submitted at once."""
        self._check(Step.READY, to=JobStatus.ACCEPTED)
        return replace(self, updated_at=now, status=JobStatus.ACCEPTED, error=None, check_at=now)

    def claimed(self, now: float) -> Job:
        """A submitter claims the accepted job just before it calls the provider (one more attempt)."""
        self._check(Step.CLAIMED)
        return replace(self, updated_at=now, submit_claimed_at=now, attempts=self.attempts + 1)

    def deferred(self, now: float, error: Mapping[str, Any], retry_at: float) -> Job:
        """The provider could not take the job now: drop the claim and try again at ``retry_at``."""
        self._check(Step.DEFERRED)
        return replace(self, updated_at=now, submit_claimed_at=None, error=dict(error), check_at=retry_at)

    def submitted(self, now: float, task_id: str, *, estimated_time: int | None, credits_reserved: float | None,
                  check_at: float) -> Job:
        """The provider created task ``task_id``; look again at ``check_at`` if no callback came."""
        self._check(Step.SUBMITTED, to=JobStatus.SUBMITTED)
        return replace(self, updated_at=now, status=JobStatus.SUBMITTED, task_id=task_id, submitted_at=now,
                       error=None, estimated_time=estimated_time, credits_reserved=credits_reserved,
                       check_at=check_at)

    def unconfirmed(self, now: float, reason: str, *, check_at: float) -> Job:
        """The provider may or may not have a task: wait for its callback (never resubmit blindly)."""
        self._check(Step.UNCONFIRMED, to=JobStatus.SUBMITTED)
        return replace(self, updated_at=now, status=JobStatus.SUBMITTED, unknown_outcome=True, submitted_at=now,
                       error={"code": "unknown_outcome", "message": reason}, check_at=check_at)

    def resolved(self, now: float, task_id: str, *, estimated_time: int | None) -> Job:
        """A callback named the task of this unconfirmed job, and the provider confirmed it."""
        self._check(Step.RESOLVED)
        return replace(self, updated_at=now, task_id=task_id, unknown_outcome=False, error=None,
                       estimated_time=estimated_time)

    def progressed(self, now: float, progress: int, *, processing: bool) -> Job:
        """The provider reports ``progress``; ``processing`` when it says the task is processing."""
        to = JobStatus.PROCESSING if processing and self.status is not JobStatus.PROCESSING else None
        self._check(Step.PROGRESSED, to=to)
        return replace(self, updated_at=now, status=to or self.status, progress=progress)

    def leased(self, now: float, worker: str, until: float) -> Job:
        """``worker`` takes (or renews) the lease to copy the result, until ``until``. The first lease also
        stamps ``result_seen_at``: when the relay first read the task completed (its result URLs expire 24 h after
        EvoLink completed it)."""
        self._check(Step.LEASED)
        seen = now if self.result_seen_at is None else self.result_seen_at
        return replace(self, updated_at=now, lease_owner=worker, lease_until=until, result_seen_at=seen)

    def released(self, now: float) -> Job:
        """The lease is given up so that the next worker may start at once."""
        self._check(Step.RELEASED)
        return replace(self, updated_at=now, lease_owner=None, lease_until=None)

    def retried(self, now: float, failure: Mapping[str, Any], retry_at: float) -> Job:
        """The task failed with a code that says try again: record it (``failure`` carries its code and message)
        and submit a new task of the same job at ``retry_at``."""
        self._check(Step.RETRIED, to=JobStatus.ACCEPTED)
        record = {"task_id": self.task_id, **dict(failure), "failed_at": rfc3339(now)}
        return replace(self, updated_at=now, status=JobStatus.ACCEPTED, failed_tasks=(*self.failed_tasks, record),
                       task_id=None, submitted_at=None, unknown_outcome=False, progress=0, estimated_time=None,
                       submit_claimed_at=None, lease_owner=None, lease_until=None, at_risk_at=None,
                       result_seen_at=None, error=dict(failure), check_at=retry_at)

    def at_risk(self, now: float, check_at: float) -> Job:
        """EvoLink completed the task, but its result is still not copied and its URL expires soon."""
        self._check(Step.AT_RISK)
        return replace(self, updated_at=now, at_risk_at=now, check_at=check_at)

    def stored(self, now: float, outputs: tuple[Output, ...], *, credits_used: float | None = None) -> Job:
        """The result is copied: the outcome is ``completed`` (billed ``credits_used``, when EvoLink says), and its
        event is due at once."""
        self._check(Step.STORED, to=JobStatus.STORED, records=Outcome.COMPLETED)
        return replace(self, updated_at=now, status=JobStatus.STORED, outcome=Outcome.COMPLETED, outputs=outputs,
                       progress=100, finished_at=now, error=None, check_at=now,
                       credits_used=self.credits_used if credits_used is None else credits_used)

    def concluded(self, now: float, outcome: Outcome, error: Mapping[str, Any] | None) -> Job:
        """The job ends without outputs (``outcome`` and ``error``); it keeps its status until it is published."""
        self._check(Step.CONCLUDED, records=outcome)
        return replace(self, updated_at=now, outcome=outcome, error=dict(error or {}) or None, finished_at=now,
                       check_at=now, lease_owner=None, lease_until=None)

    def published(self, now: float, event_id: str) -> Job:
        """The outcome's event ``event_id`` is out: the job takes its final status."""
        final = None if self.outcome is None else OUTCOME_STATUS[Outcome(self.outcome)]
        self._check(Step.PUBLISHED, to=final or self.status)
        return replace(self, updated_at=now, status=final or self.status, event_ids=(*self.event_ids, event_id),
                       check_at=None, lease_owner=None, lease_until=None)

    def noted_other_task(self, now: float, task_id: str) -> Job:
        """A callback named ``task_id``, another task than the job's own: keep it on record."""
        self._check(Step.NOTED_OTHER_TASK)
        return replace(self, updated_at=now, other_tasks=(*self.other_tasks, task_id))

    def noted_dependent(self, now: float, job_id: str) -> Job:
        """Job ``job_id`` waits for this one: publishing this job's event wakes it (once on record, no change)."""
        self._check(Step.NOTED_DEPENDENT)
        if job_id in self.dependents:
            return self
        return replace(self, updated_at=now, dependents=(*self.dependents, job_id))

    def rescheduled(self, now: float, check_at: float) -> Job:
        """The reconciler looks at the job again at ``check_at``."""
        self._check(Step.RESCHEDULED)
        return replace(self, updated_at=now, check_at=check_at)

    def attempt_log(self) -> list[dict[str, Any]]:
        """Every task of the job, oldest first: the failed ones (task id, code, message, time), then the current."""
        log = [dict(t) for t in self.failed_tasks]
        if self.task_id is not None:
            log.append({"task_id": self.task_id})
        return log

    def public(self) -> dict[str, Any]:
        """The job as the HTTP API shows it: times in RFC 3339 UTC, each output with its route's ``url``."""
        return {
            "id": self.id, "status": self.status.value,
            "outcome": None if self.outcome is None else Outcome(self.outcome).value,
            "task_id": self.task_id, "model": self.model, "progress": self.progress,
            "created_at": rfc3339(self.created_at), "updated_at": rfc3339(self.updated_at),
            "submitted_at": _rfc3339_or_none(self.submitted_at),
            "finished_at": _rfc3339_or_none(self.finished_at),
            "estimated_time": self.estimated_time, "credits_reserved": self.credits_reserved,
            "credits": {"estimated": self.credits_estimated, "held": self.credits_held,
                        "reserved": self.credits_reserved, "used": self.credits_used},
            "tenant": self.tenant,
            "error": dict(self.error) if self.error else None,
            "outputs": [o.public(self.id, i) for i, o in enumerate(self.outputs)],
            "event_ids": list(self.event_ids), "metadata": dict(self.metadata),
            "idempotency_key": self.idempotency_key, "attempts": self.attempt_log(),
            "depends_on": list(self.depends_on), "dependents": list(self.dependents),
            "storyboard": self.storyboard, "shot": self.shot, "deadline_at": _rfc3339_or_none(self.deadline_at),
            "at_risk_at": _rfc3339_or_none(self.at_risk_at),
        }
