"""What the dashboard shows, as JSON: the summary (jobs, counts, queues, usage) and one job's details.

Times are RFC 3339 in UTC, as in the rest of the API (:func:`handlers.domain.jobs.rfc3339`); the page
shows them in the viewer's locale. Counts are one capped count per status
(:meth:`~handlers.ports.JobStore.count`): each reads at most ``COUNT_CAP + 1`` index entries,
however many jobs there are, and says ``more`` past the cap. ``usage`` holds the lines of
``GET /v1/usage`` the viewer may see. A queued job carries its ``queue_position`` (1: next), as in the
API; the places are read once per answer, and only when a queued job is in it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from handlers.app.relay import Relay
from handlers.domain.events import EVENT_TYPES, event_id
from handlers.domain.jobs import Job, JobStatus, Output, output_url, rfc3339
from handlers.usecases.admission import places
from handlers.usecases.budget import usage_report

__all__ = ["COUNT_CAP", "REFRESH_SECONDS", "job_details", "summarize", "usage"]

COUNT_CAP = 1000
REFRESH_SECONDS = 5.0
_JOB_FIELDS = ("id", "tenant", "status", "outcome", "model", "progress", "created_at", "updated_at",
               "submitted_at", "finished_at", "estimated_time", "error", "credits", "at_risk_at", "deadline_at")
_DETAIL_FIELDS = ("task_id", "idempotency_key", "credits_reserved")
_POSTERS = {"poster": "poster", "poster-thumbnail": "poster_thumbnail"}  # picture role: its key in a row


def summarize(relay: Relay, limit: int, refresh_seconds: float = REFRESH_SECONDS, *,
              status: JobStatus | None = None, tenant: str | None = None, admin: bool = True) -> dict[str, Any]:
    """The newest ``limit`` jobs (of ``status``, of ``tenant`` if given), counts by status, every queue's depth,
    and the usage of ``tenant`` (of every tenant for an ``admin``, whose rows also name their tenant).

    A viewer that is not an admin must pass its own ``tenant`` (without one it is shown no usage)."""
    jobs, _ = relay.jobs.page(status=status, tenant=tenant, limit=limit)
    queued = places(relay) if any(job.status is JobStatus.QUEUED for job in jobs) else {}
    queues = [{"name": "ingest", "kind": "ingest", **relay.ingest_queue.depth()}]
    queues += [{"name": name, "kind": "subscriber", **relay.bus.subscriber(name).depth()}
               for name, _ in relay.settings.subscribers]
    return {"server_time": rfc3339(relay.clock()), "refresh_seconds": refresh_seconds,
            "status": status.value if status else None, "tenant": tenant, "admin": admin,
            "jobs": [_job_row(job, queued) for job in jobs], "counts": _counts(relay, tenant), "queues": queues,
            "dead_letters": sum(q["dead"] for q in queues),
            "usage": usage(relay, None if admin else [tenant] if tenant else [])}


def usage(relay: Relay, tenants: Collection[str] | None) -> list[dict[str, Any]]:
    """The lines of ``GET /v1/usage`` for ``tenants`` (``None``: every tenant with a budget or holds)."""
    lines = usage_report(relay.ledger, relay.settings.budgets, tenants, relay.clock())
    return [line.as_dict() for line in lines]


def job_details(relay: Relay, job: Job) -> dict[str, Any]:
    """One job for its details panel: the row's fields (a queued job's place too) plus request, metadata,
    ``attempts`` (every task, as the API lists them), outputs (with their media facts, checks and picture routes)
    and events."""
    details = _job_row(job, places(relay) if job.status is JobStatus.QUEUED else {})
    details.update({name: getattr(job, name) for name in _DETAIL_FIELDS})
    details["attempts"] = job.attempt_log()
    details["request"] = dict(job.request)
    details["metadata"] = dict(job.metadata)
    for row, output in zip(details["outputs"], job.outputs, strict=True):
        row.update(sha256=output.sha256, media=output.media, checks=[dict(check) for check in output.checks],
                   frames={role: f"{row['url']}/{role}" for role in output.frames})
    details["events"] = [{"id": published, "type": _event_type(job.id, published)} for published in job.event_ids]
    return details


def _event_type(job_id: str, published: str) -> str | None:
    """The CloudEvent type whose deterministic id is ``published`` (``None`` for an id of no known type)."""
    return next((kind for kind in EVENT_TYPES if event_id(job_id, kind.rpartition(".")[2]) == published), None)


def _job_row(job: Job, queued: Mapping[str, int]) -> dict[str, Any]:
    """The job's row; a queued job's ``queue_position`` is its place in ``queued`` (``None`` if not there)."""
    public = job.public()
    row = {name: public[name] for name in _JOB_FIELDS}
    if job.status is JobStatus.QUEUED:
        row["queue_position"] = queued.get(job.id)
    duration = job.request.get("duration")
    row["duration"] = duration if isinstance(duration, int) else None
    row["outputs"] = [_output_row(job.id, i, o) for i, o in enumerate(job.outputs)]
    return row


def _output_row(job_id: str, index: int, output: Output) -> dict[str, Any]:
    """An output in a row: its route, type and size, and the routes of its poster and thumbnail when it has them."""
    url = output_url(job_id, index)
    row: dict[str, Any] = {"index": index, "url": url, "content_type": output.content_type, "size": output.size}
    row.update({_POSTERS[role]: f"{url}/{role}" for role in output.frames if role in _POSTERS})
    return row


def _counts(relay: Relay, tenant: str | None) -> dict[str, dict[str, Any]]:
    """Jobs (of ``tenant``, or of all) per status, counted up to :data:`COUNT_CAP` (``more`` says there are others)."""
    counts = {}
    for status in JobStatus:
        counted = relay.jobs.count(status, COUNT_CAP + 1, tenant=tenant)
        counts[status.value] = {"count": min(counted, COUNT_CAP), "more": counted > COUNT_CAP}
    return counts
