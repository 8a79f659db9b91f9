"""CloudEvents 1.0 (structured JSON mode) for job outcomes.

``id`` is deterministic — sha256 of job id and outcome — so every retry of a publish
carries the same id and consumers can dedupe. ``type`` is
``io.seedance-relay.job.<outcome>``, ``subject`` the job id. Every time (``time``,
``data.created_at``, ``data.finished_at``) is RFC 3339 in UTC with ``Z`` and microseconds,
as in the API's jobs (:func:`handlers.domain.jobs.rfc3339`). ``tenant`` is a CloudEvents
extension attribute naming the job's tenant, and subscribers may filter on it as on ``type``.

A subscriber's filter is a list of event types (or ``"*"`` for all) and, optionally, of
``tenant:<name>`` items: then only those tenants' events reach it (:func:`wants`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from handlers.domain.jobs import Job, Outcome, rfc3339

__all__ = ["ALL_TYPES", "EVENT_TYPES", "SOURCE", "TENANT_FILTER", "TYPE_PREFIX", "build_event", "event_id",
           "event_type", "split_filter", "wants"]

SOURCE = "urn:seedance-relay"
TYPE_PREFIX = "io.seedance-relay.job."
OUTCOMES = tuple(outcome.value for outcome in Outcome)
EVENT_TYPES = tuple(TYPE_PREFIX + outcome for outcome in OUTCOMES)
ALL_TYPES = "*"
TENANT_FILTER = "tenant:"


def split_filter(items: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """A subscriber's filter as ``(types, tenants)``; no tenants means every tenant."""
    items = tuple(items)
    tenants = frozenset(i.removeprefix(TENANT_FILTER) for i in items if i.startswith(TENANT_FILTER))
    types = frozenset(i for i in items if not i.startswith(TENANT_FILTER)) or frozenset({ALL_TYPES})
    return types, tenants


def wants(items: Iterable[str], event_type: str, tenant: str | None) -> bool:
    """Whether a subscriber with filter ``items`` gets an event of ``event_type`` and ``tenant``."""
    types, tenants = split_filter(items)
    return (ALL_TYPES in types or event_type in types) and (not tenants or tenant in tenants)


def event_id(job_id: str, outcome: str) -> str:
    return hashlib.sha256(f"{job_id}:{outcome}".encode()).hexdigest()[:32]


def event_type(outcome: str) -> str:
    return TYPE_PREFIX + outcome


def build_event(job: Job, *, now: float, source: str = SOURCE) -> dict[str, Any]:
    """The CloudEvent for a job whose ``outcome`` is known."""
    if job.outcome is None:
        raise ValueError(f"job {job.id} has no outcome yet")
    outcome = Outcome(job.outcome).value
    data: dict[str, Any] = {
        "job_id": job.id,
        "task_id": job.task_id,
        "model": job.model,
        "outcome": outcome,
        "outputs": [o.as_dict() for o in job.outputs],
        "duration": _duration(job.request.get("duration")),
        "metadata": dict(job.metadata),
        "created_at": rfc3339(job.created_at),
        "finished_at": rfc3339(job.finished_at) if job.finished_at is not None else None,
    }
    if job.error:
        data["error"] = dict(job.error)
    return {
        "specversion": "1.0",
        "id": event_id(job.id, outcome),
        "source": source,
        "type": event_type(outcome),
        "subject": job.id,
        "tenant": job.tenant,
        "time": rfc3339(now),
        "datacontenttype": "application/json",
        "data": data,
    }


def _duration(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

