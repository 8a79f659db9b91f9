"""What the job routes share: the listing's query parameters, and the one answer for a job the caller may not see.

A job of another tenant is answered exactly as a job that does not exist (``404``, same body), so
an id tells a caller nothing about other tenants.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from starlette.requests import Request

from handlers.app.relay import Relay
from handlers.base.errors import InvalidRequest, NotFound, Violation
from handlers.domain.jobs import Job, JobStatus
from handlers.domain.tenancy import TENANT_PATTERN, Principal
from handlers.usecases.admission import places

__all__ = ["Listing", "list_params", "shown", "visible_job"]


class Listing(NamedTuple):
    """A listing's ``status``, ``limit``, ``cursor`` and (for admins) ``tenant`` query parameters."""

    status: JobStatus | None
    limit: int
    cursor: str | None
    tenant: str | None


def list_params(request: Request, *, default_limit: int = 50) -> Listing:
    """The listing parameters, or one ``InvalidRequest`` naming every bad one."""
    problems: list[Violation] = []
    query = request.query_params
    raw_status, raw_limit, tenant = query.get("status"), query.get("limit", str(default_limit)), query.get("tenant")
    status = None
    if raw_status:
        try:
            status = JobStatus(raw_status)
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            problems.append(Violation("status", "invalid_choice", f"status must be one of {allowed}"))
    limit = int(raw_limit) if raw_limit.isdigit() else 0
    if not 1 <= limit <= 100:
        problems.append(Violation("limit", "out_of_range", "limit must be an integer from 1 to 100"))
    if tenant is not None and not TENANT_PATTERN.match(tenant):
        problems.append(Violation("tenant", "invalid_format", "tenant must be 1-63 of a-z 0-9 _ -"))
    if problems:
        raise InvalidRequest(problems)
    return Listing(status, limit, query.get("cursor") or None, tenant or None)


def visible_job(relay: Relay, viewer: Principal, job_id: str) -> Job:
    """The job if ``viewer`` may see it; otherwise the very ``NotFound`` a missing job gets."""
    job = relay.jobs.get(job_id)
    if not viewer.sees(job.tenant):
        raise NotFound(f"no job {job_id!r}")
    return job


def shown(relay: Relay, jobs: list[Job]) -> list[dict[str, Any]]:
    """The jobs as the API shows them; a queued one also with its ``queue_position`` (1: next)."""
    queued = places(relay) if any(job.status is JobStatus.QUEUED for job in jobs) else {}
    return [{**job.public(), **({"queue_position": queued.get(job.id)} if job.status is JobStatus.QUEUED else {})}
            for job in jobs]
