"""The job: one generation request, its provider task, its stored outputs and its events.

States::

    accepted ─▶ submitted ─▶ processing ─▶ stored ─▶ published
        │            │             │
        ├─▶ rejected ├─▶ failed / cancelled / expired (each publishes its event)

``status`` says where the job is; ``outcome`` (completed, failed, cancelled, expired,
rejected) is set once the provider's answer is known and decides the event;
``check_at`` is set while the job still needs work (the reconciler's index) and cleared
once its event is published. Every change is a conditional write on ``version``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote

__all__ = ["TERMINAL", "Job", "JobStatus", "Output", "derive_job_id", "output_url", "request_fingerprint",
           "rfc3339"]


class JobStatus(StrEnum):
    ACCEPTED = "accepted"
    SUBMITTED = "submitted"
    PROCESSING = "processing"
    STORED = "stored"
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


TERMINAL = frozenset({JobStatus.PUBLISHED, JobStatus.FAILED, JobStatus.CANCELLED,
                      JobStatus.REJECTED, JobStatus.EXPIRED})
OUTCOME_STATUS = {"completed": JobStatus.PUBLISHED, "failed": JobStatus.FAILED,
                  "cancelled": JobStatus.CANCELLED, "expired": JobStatus.EXPIRED,
                  "rejected": JobStatus.REJECTED}


@dataclass(frozen=True, slots=True)
class Output:
    uri: str
    key: str
    size: int
    sha256: str
    content_type: str = "video/mp4"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    idempotency_key: str | None = None
    task_id: str | None = None
    model: str | None = None
    progress: int = 0
    estimated_time: int | None = None
    credits_reserved: float | None = None
    submitted_at: float | None = None
    finished_at: float | None = None
    outcome: str | None = None
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
    version: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def evolve(self, now: float, **changes: Any) -> Job:
        """A copy with ``changes``, stamped ``now``; the store bumps ``version``."""
        return replace(self, updated_at=now, **changes)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["status"] = self.status.value
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Job:
        data = dict(record)
        data["status"] = JobStatus(data["status"])
        data["outputs"] = tuple(Output(**o) for o in data.get("outputs") or ())
        for name in ("event_ids", "other_tasks"):
            data[name] = tuple(data.get(name) or ())
        return cls(**data)

    def public(self) -> dict[str, Any]:
        """The job as the HTTP API shows it: times in RFC 3339 UTC, each output with its route's ``url``."""
        return {
            "id": self.id, "status": self.status.value, "outcome": self.outcome,
            "task_id": self.task_id, "model": self.model, "progress": self.progress,
            "created_at": rfc3339(self.created_at), "updated_at": rfc3339(self.updated_at),
            "submitted_at": _rfc3339_or_none(self.submitted_at),
            "finished_at": _rfc3339_or_none(self.finished_at),
            "estimated_time": self.estimated_time, "credits_reserved": self.credits_reserved,
            "error": dict(self.error) if self.error else None,
            "outputs": [{**o.as_dict(), "url": output_url(self.id, i)} for i, o in enumerate(self.outputs)],
            "event_ids": list(self.event_ids), "metadata": dict(self.metadata),
            "idempotency_key": self.idempotency_key,
        }
