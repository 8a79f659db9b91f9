"""CloudEvents 1.0 (structured JSON mode) for job outcomes.

``id`` is deterministic — sha256 of job id and outcome — so every retry of a publish
carries the same id and consumers can dedupe. ``type`` is
``io.seedance-relay.job.<outcome>``, ``subject`` the job id. The terminal events carry the job's
``attempts`` (every task it used, the failed ones with their code and time). One event is not
terminal: ``io.seedance-relay.job.at_risk`` (:func:`build_at_risk_event`), published once when a
completed task's result is still not copied as its URL nears its expiry; its id is derived from
the job id and ``at_risk`` the same way. Every time (``time``,
``data.created_at``, ``data.finished_at``) is RFC 3339 in UTC with ``Z`` and microseconds,
as in the API's jobs (:func:`handlers.domain.jobs.rfc3339`). ``tenant`` is a CloudEvents
extension attribute naming the job's tenant, and subscribers may filter on it as on ``type``.

A subscriber's filter is a list of event types (or ``"*"`` for all) and, optionally, of
``tenant:<name>`` items: then only those tenants' events reach it (:func:`wants`). People name a type
the short way (:func:`full_type` reads ``completed``, ``job.completed`` and ``storyboard.completed``;
:func:`short_type` shows a type that way).

Each output carries its ``media`` facts, ``checks`` and ``frames`` (role → URI of its stored pictures).
Given a ``presign`` function (a blob store's: key and seconds → URL, or ``None``), each output also carries
``frame_urls``: its pictures' URLs anyone may GET for :data:`FRAME_URL_SECONDS` (until
``frame_urls_expire_at``), where the store can make them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from handlers.domain.jobs import Job, Outcome, Output, rfc3339
from handlers.domain.storyboards import STORYBOARD_EVENT_TYPES, STORYBOARD_TYPE_PREFIX

__all__ = ["ALL_TYPES", "AT_RISK", "EVENT_TYPES", "FAMILY", "FRAME_URL_SECONDS", "OUTCOME_TYPES", "SOURCE",
           "TENANT_FILTER", "TYPE_PREFIX", "build_at_risk_event", "build_event", "event_id", "event_type", "full_type",
           "short_type", "split_filter", "wants"]

SOURCE = "urn:seedance-relay"
FAMILY = "io.seedance-relay."
"""What every event type of the relay starts with: a type that does is taken as a full type."""
TYPE_PREFIX = FAMILY + "job."
OUTCOMES = tuple(outcome.value for outcome in Outcome)
AT_RISK = "at_risk"
OUTCOME_TYPES = tuple(TYPE_PREFIX + outcome for outcome in OUTCOMES)
"""The terminal events: one per outcome, and each job publishes exactly one of them."""
EVENT_TYPES = (*OUTCOME_TYPES, TYPE_PREFIX + AT_RISK, *STORYBOARD_EVENT_TYPES)
ALL_TYPES = "*"
TENANT_FILTER = "tenant:"
_SHORT_PREFIXES = {"job.": TYPE_PREFIX, "storyboard.": STORYBOARD_TYPE_PREFIX}
FRAME_URL_SECONDS = 24 * 3600
"""How long an event's presigned picture URLs stay valid (less when the signing credentials expire first)."""


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


def full_type(name: str) -> str:
    """The event type ``name`` names: a full type (``io.seedance-relay.…``) as it is, ``storyboard.<outcome>``
    and ``job.<outcome>`` under their family, and a bare outcome (``completed``) as a job's. The result need
    not be a type the relay publishes: check it against :data:`EVENT_TYPES`."""
    if name.startswith(FAMILY):
        return name
    for short, prefix in _SHORT_PREFIXES.items():
        if name.startswith(short):
            return prefix + name.removeprefix(short)
    return event_type(name)


def short_type(full: str) -> str:
    """How a type is shown: a job's by its outcome (``completed``), others without the family
    (``storyboard.completed``)."""
    return full.removeprefix(TYPE_PREFIX).removeprefix(FAMILY)


def event_id(job_id: str, outcome: str) -> str:
    return hashlib.sha256(f"{job_id}:{outcome}".encode()).hexdigest()[:32]


def event_type(outcome: str) -> str:
    return TYPE_PREFIX + outcome


def build_event(job: Job, *, now: float, source: str = SOURCE,
                presign: Callable[[str, int], str | None] | None = None) -> dict[str, Any]:
    """The CloudEvent for a job whose ``outcome`` is known; ``presign`` (see the module) adds ``frame_urls``."""
    if job.outcome is None:
        raise ValueError(f"job {job.id} has no outcome yet")
    outcome = Outcome(job.outcome).value
    data: dict[str, Any] = {
        "job_id": job.id,
        "task_id": job.task_id,
        "model": job.model,
        "outcome": outcome,
        "outputs": [_output(o, now, presign) for o in job.outputs],
        "duration": _duration(job.request.get("duration")),
        "metadata": dict(job.metadata),
        "created_at": rfc3339(job.created_at),
        "finished_at": rfc3339(job.finished_at) if job.finished_at is not None else None,
        "attempts": job.attempt_log(),
    }
    if job.error:
        data["error"] = dict(job.error)
    return _envelope(job, outcome, now, source, data)


def build_at_risk_event(job: Job, *, now: float, expires_at: float, source: str = SOURCE) -> dict[str, Any]:
    """The ``at_risk`` CloudEvent of a job whose completed task's result is not copied yet and whose URLs expire
    at ``expires_at`` at the latest."""
    if job.result_seen_at is None:
        raise ValueError(f"job {job.id} has no completed task on record")
    data: dict[str, Any] = {
        "job_id": job.id,
        "task_id": job.task_id,
        "model": job.model,
        "duration": _duration(job.request.get("duration")),
        "metadata": dict(job.metadata),
        "created_at": rfc3339(job.created_at),
        "result_seen_at": rfc3339(job.result_seen_at),
        "expires_at": rfc3339(expires_at),
        "attempts": job.attempt_log(),
    }
    return _envelope(job, AT_RISK, now, source, data)


def _envelope(job: Job, kind: str, now: float, source: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id(job.id, kind),
        "source": source,
        "type": event_type(kind),
        "subject": job.id,
        "tenant": job.tenant,
        "time": rfc3339(now),
        "datacontenttype": "application/json",
        "data": data,
    }


def _output(output: Output, now: float, presign: Callable[[str, int], str | None] | None) -> dict[str, Any]:
    shown = output.as_dict()
    urls = {role: url for role in output.frames if presign is not None
            and (url := presign(output.frame_key(role), FRAME_URL_SECONDS)) is not None}
    if urls:
        shown |= {"frame_urls": urls, "frame_urls_expire_at": rfc3339(now + FRAME_URL_SECONDS)}
    return shown


def _duration(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

