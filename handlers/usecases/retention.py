"""The clean-up pass: remove what the retention settings let go, through the ports, and say what went.

Each kind of thing the relay keeps has a setting that bounds it:

    jobs      finished job records, ``RELAY_JOB_RETENTION`` days after they finished (jobs not yet final
              are never touched)
    videos    everything under ``jobs/`` (videos, manifests, frames, late-callback records),
              ``RELAY_VIDEO_RETENTION`` days after it was written; unset, kept forever
    uploads   uploaded references, ``RELAY_UPLOAD_URL_TTL`` + ``RELAY_UPLOAD_GRACE`` seconds after upload
    messages  queue messages (dead letters too) nobody acknowledged, ``RELAY_QUEUE_RETENTION`` days after
              they were sent (SQS drops them itself)
    events    the event log, ``RELAY_EVENT_RETENTION`` days after publishing, when the log given can purge
              (the SQLite one; DynamoDB's TTL removes the AWS one)

Acknowledged messages and delivered subscriber copies are deleted when they are acknowledged, and a
revoked dashboard session's record when the session would have expired anyway: neither waits for a
pass. After a real pass, the job store gives the space that deletes freed back (``compact``).

A pass removes at most ``limit`` items of each kind; what is left goes in the next one. A dry run
finds the same items and removes nothing. ``lag`` moves every cut-off that much further back: the
AWS pass leaves the table's TTL two days to remove finished jobs for free and takes only the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from handlers.app.settings import Settings
from handlers.base.errors import NotFound
from handlers.base.logs import get_logger
from handlers.ports import BlobStore, EventBus, JobStore, Removed, WorkQueue

__all__ = ["DAY", "KINDS", "PASS_LIMIT", "Collected", "GarbageReport", "Kind", "PurgesEvents", "Stores",
           "collect_garbage", "cutoffs", "gc_due"]

log = get_logger(__name__)
DAY = 86_400.0
PASS_LIMIT = 10_000
JOB_FILES, UPLOADS = "jobs/", "uploads/"


class Kind(StrEnum):
    JOBS = "jobs"
    VIDEOS = "videos"
    UPLOADS = "uploads"
    MESSAGES = "messages"
    EVENTS = "events"


KINDS: tuple[Kind, ...] = tuple(Kind)
Found = tuple[int, int | None] | str
"""A step's answer: how many items and their bytes (``None``: not known), or why it looked at nothing."""


class Stores(Protocol):
    """What a pass needs of the relay: its settings and storage (a :class:`~handlers.app.relay.Relay` has them;
    so has what ``seedance-relay gc`` builds, without a provider)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def jobs(self) -> JobStore: ...

    @property
    def blobs(self) -> BlobStore: ...

    @property
    def ingest_queue(self) -> WorkQueue: ...

    @property
    def bus(self) -> EventBus: ...


@runtime_checkable
class PurgesEvents(Protocol):
    """An event log that deletes what was published before a time (the SQLite one); returns how many."""

    def purge(self, before: float) -> int:
        ...


@dataclass(frozen=True, slots=True)
class Collected:
    """One kind's part of a pass: the cut-off (``None``: kept forever, or not asked for), and what went.

    ``bytes`` is ``None`` where the store does not say (the event log); ``skipped`` says why nothing was
    looked at."""

    kind: Kind
    before: float | None
    count: int = 0
    bytes: int | None = 0
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "before": self.before, "count": self.count, "bytes": self.bytes,
                "skipped": self.skipped}


@dataclass(frozen=True, slots=True)
class GarbageReport:
    """What one pass removed (a dry run: would remove), by kind, and the bytes the database gave back."""

    now: float
    dry_run: bool
    collected: tuple[Collected, ...]
    reclaimed: int = 0

    @property
    def count(self) -> int:
        return sum(part.count for part in self.collected)

    def as_dict(self) -> dict[str, Any]:
        return {"now": self.now, "dry_run": self.dry_run, "count": self.count, "reclaimed_bytes": self.reclaimed,
                "kinds": [part.as_dict() for part in self.collected]}


def cutoffs(settings: Settings, now: float, *, lag: float = 0.0) -> dict[Kind, float | None]:
    """Per kind, the time before which things go (``None``: kept forever)."""
    return {
        Kind.JOBS: now - lag - settings.job_retention * DAY,
        Kind.VIDEOS: None if settings.video_retention is None else now - lag - settings.video_retention * DAY,
        Kind.UPLOADS: now - lag - (settings.upload_url_ttl + settings.upload_grace),
        Kind.MESSAGES: now - lag - settings.queue_retention * DAY,
        Kind.EVENTS: now - lag - settings.event_retention * DAY,
    }


def gc_due(now: float, *, every: float, period: float) -> bool:
    """Whether a pass run every ``period`` seconds (a schedule) should collect at ``now``: once every
    ``every`` seconds, in the run that is the first after each multiple of ``every``. Needs no memory of
    earlier runs, so it suits a function that keeps none (a Lambda)."""
    if every <= period:
        return True
    return now // every != (now - period) // every


def collect_garbage(relay: Stores, *, now: float, dry_run: bool = False, kinds: Collection[Kind] = KINDS,
                    limit: int = PASS_LIMIT, lag: float = 0.0, event_log: object | None = None) -> GarbageReport:
    """One clean-up pass over ``kinds`` as of ``now`` (see the module's docstring)."""
    before = cutoffs(relay.settings, now, lag=lag)
    steps: dict[Kind, Callable[[float], Found]] = {
        Kind.JOBS: lambda cut: _found(relay.jobs.purge_finished(cut, limit=limit, dry_run=dry_run)),
        Kind.VIDEOS: lambda cut: _objects(relay.blobs, JOB_FILES, cut, limit, dry_run),
        Kind.UPLOADS: lambda cut: _objects(relay.blobs, UPLOADS, cut, limit, dry_run),
        Kind.MESSAGES: lambda cut: _messages(_queues(relay), cut, limit, dry_run),
        Kind.EVENTS: lambda cut: _events(event_log, cut, dry_run),
    }
    collected = tuple(_step(kind, before[kind], steps[kind]) if kind in kinds
                      else Collected(kind, None, skipped="not asked for") for kind in KINDS)
    reclaimed = 0 if dry_run else relay.jobs.compact()
    report = GarbageReport(now=now, dry_run=dry_run, collected=collected, reclaimed=reclaimed)
    log.info("gc.pass", dry_run=dry_run, reclaimed_bytes=reclaimed,
             **{part.kind.value: part.count for part in collected if part.skipped is None})
    return report


def _step(kind: Kind, before: float | None, run: Callable[[float], Found]) -> Collected:
    if before is None:
        return Collected(kind, None, skipped="kept forever")
    found = run(before)
    if isinstance(found, str):
        return Collected(kind, before, skipped=found)
    return Collected(kind, before, *found)


def _found(removed: Removed) -> Found:
    return removed.count, removed.bytes


def _objects(blobs: BlobStore, prefix: str, before: float, limit: int, dry_run: bool) -> Found:
    old = blobs.older(prefix, before, limit)
    if old and not dry_run:
        blobs.delete([item.key for item in old])
    return len(old), sum(item.size for item in old)


def _messages(queues: Iterable[WorkQueue], before: float, limit: int, dry_run: bool) -> Found:
    removed = [queue.expire(before, limit=limit, dry_run=dry_run) for queue in queues]
    return sum(r.count for r in removed), sum(r.bytes for r in removed)


def _events(event_log: object | None, before: float, dry_run: bool) -> Found:
    if not isinstance(event_log, PurgesEvents):
        return "no event log that purges here (on AWS the table's TTL removes events)"
    if dry_run:
        return "counted only by a real run"
    return event_log.purge(before), None


def _queues(relay: Stores) -> list[WorkQueue]:
    """The ingest queue and every subscriber's (webhooks are subscribers too)."""
    names = dict.fromkeys([name for name, _ in relay.settings.subscribers]
                          + [name for name, _ in relay.settings.webhooks])
    queues = [relay.ingest_queue]
    for name in names:
        try:
            queues.append(relay.bus.subscriber(name))
        except NotFound:
            continue
    return queues
