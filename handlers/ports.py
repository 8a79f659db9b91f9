"""The ports the use cases talk to. Adapters live in ``handlers.adapters``.

Every adapter translates its vendor's errors into the project's (``NotFound``,
``Conflict``, ``StorageError``, ``QueueError``) at this boundary.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from handlers.domain.budgets import Budget, Usage
from handlers.domain.jobs import Job, JobStatus
from handlers.domain.tenancy import ApiKey
from handlers.provider.evolink.task import Task

__all__ = ["BlobStore", "BudgetLedger", "EventBus", "EventLog", "JobStore", "KeyStore", "ListedObject", "LoggedEvent",
           "Message", "Provider", "Removed", "SessionRevocations", "Settles", "SlotLease", "SlotPool", "StoredObject",
           "SupportsReadinto", "WorkQueue", "settle"]


@dataclass(frozen=True, slots=True)
class Removed:
    """What one clean-up step removed (or, in a dry run, would remove): how many items, and their bytes."""

    count: int = 0
    bytes: int = 0


class SessionRevocations(Protocol):
    """Dashboard sessions ended before their expiry, shared by every process that checks a cookie."""

    def revoke_session(self, session_id: str, until: float) -> None:
        """Record ``session_id`` as revoked; the record may be dropped once ``until`` (the session's expiry) passes."""
        ...

    def session_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` is revoked and its record has not yet expired (one key lookup)."""
        ...


class JobStore(SessionRevocations, Protocol):
    """The jobs; the same storage also keeps the small session revocation records."""

    def create(self, job: Job) -> Job:
        """Insert ``job`` if no job has its id; return the stored job either way."""
        ...

    def get(self, job_id: str) -> Job:
        """The job, or ``NotFound``."""
        ...

    def existing(self, job_ids: Collection[str]) -> set[str]:
        """The ids among ``job_ids`` that name a stored job, looked up together (the jobs are not read)."""
        ...

    def update(self, job: Job) -> Job:
        """Write ``job`` if the stored version is still ``job.version``; bump the version.

        Raises ``Conflict`` when another writer got there first.
        """
        ...

    def page(self, *, status: JobStatus | None = None, tenant: str | None = None, limit: int = 50,
             cursor: str | None = None) -> tuple[list[Job], str | None]:
        """Newest first, of every tenant or of ``tenant`` only; the second value is the cursor of the next
        page, if any."""
        ...

    def count(self, status: JobStatus, cap: int, *, tenant: str | None = None) -> int:
        """How many jobs (of ``tenant``, or of all) have ``status``, counting no further than ``cap`` (an
        index read, never a scan)."""
        ...

    def queued(self, limit: int = 100) -> list[Job]:
        """Up to ``limit`` jobs with status ``queued``, oldest first (an index read)."""
        ...

    def due(self, now: float, limit: int = 100) -> list[Job]:
        """Jobs whose ``check_at`` is set and not after ``now``, oldest first (never a scan)."""
        ...

    def purge_finished(self, before: float, *, limit: int = 1000, dry_run: bool = False) -> Removed:
        """Delete up to ``limit`` jobs that reached a final status with nothing left to check before ``before``
        (epoch seconds), found through an index (never a scan); ``bytes`` is the size of their records.
        ``dry_run``: find and count them, delete nothing. A job written meanwhile is not deleted."""
        ...

    def compact(self) -> int:
        """Give the space that deletes freed in the store's files back to the file system; the bytes given
        back (``0`` for a store without files of its own)."""
        ...


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    uri: str
    size: int
    sha256: str
    content_type: str


@dataclass(frozen=True, slots=True)
class ListedObject:
    """An object as a listing shows it: its key, its size and when it was last written (epoch seconds)."""

    key: str
    size: int
    modified: float


@runtime_checkable
class SupportsReadinto(Protocol):
    """A body that can fill a caller's buffer (``0`` at its end): a binary file, a result download."""

    def readinto(self, buffer: memoryview, /) -> int:
        ...


class BlobStore(Protocol):
    """Objects under relative POSIX keys, written whole or not at all.

    Besides reading and writing, a store says what else it can do for a key, so that no
    caller needs to know which store it holds: :meth:`presign` (a URL anyone can GET for a
    while, or ``None``) and :meth:`local_path` (a file on this machine, or ``None``).
    """

    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str,
                   metadata: Mapping[str, str] | None = None, only_new: bool = False) -> StoredObject:
        """Stream ``chunks`` into ``key`` (all or nothing) and return its size and sha256.

        When ``chunks`` also has ``readinto`` (:class:`SupportsReadinto`), a store may read
        through that instead, into buffers of its own, and skip copying every chunk.
        ``only_new``: the caller expects nothing at ``key`` (it just looked, or the key is its own); if
        something is there after all, it is kept and returned instead, and the stream is discarded. A
        store may then skip looking before it writes.
        """
        ...

    def head(self, key: str) -> StoredObject | None:
        ...

    def read(self, key: str) -> Iterator[bytes]:
        ...

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes of ``key`` from offset ``start`` (fewer at its end); ``NotFound`` if the key
        holds nothing. What a reader that seeks (a container index, one frame) uses instead of the whole object."""
        ...

    def uri(self, key: str) -> str:
        ...

    def presign(self, key: str, expires_in: int) -> str | None:
        """A URL that GETs ``key`` without credentials for ``expires_in`` seconds; ``None`` if this
        store cannot make one (then the relay serves the object itself)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file holding ``key`` on this machine (it may not exist yet); ``None`` if the store is remote."""
        ...

    def older(self, prefix: str, before: float, limit: int = 1000) -> list[ListedObject]:
        """Up to ``limit`` objects whose keys start with ``prefix`` (a folder: ends with ``/``) last written
        before ``before`` (epoch seconds), in key order."""
        ...

    def delete(self, keys: Collection[str]) -> None:
        """Remove the objects at ``keys``; a key that holds nothing is no error."""
        ...


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    body: Mapping[str, Any]
    receipt: str
    receive_count: int


class Settles(Protocol):
    """What settling a received message takes: a queue, or a Lambda batch standing in for one."""

    def ack(self, message: Message) -> None:
        ...

    def retry_later(self, message: Message, delay: float) -> None:
        ...


def settle(queue: Settles, message: Message, *, done: bool, delay: float = 0.0) -> bool:
    """Settle a received message, the one way every worker does: ``done`` acks it; otherwise it is
    visible again after ``delay`` seconds, at once for ``0`` (or less), and the queue dead-letters it
    once it has been received its maximum number of times. Returns ``done``."""
    if done:
        queue.ack(message)
    else:
        queue.retry_later(message, max(delay, 0.0))
    return done


class WorkQueue(Settles, Protocol):
    """At-least-once delivery with a visibility timeout, a receive count and a DLQ."""

    def send(self, body: Mapping[str, Any], *, delay: float = 0.0) -> str:
        ...

    def send_batch(self, bodies: Sequence[Mapping[str, Any]]) -> list[str]:
        """Send every body together (one commit, or SQS batches of 10); their message ids, in order."""
        ...

    def receive(self, *, max_messages: int = 10, wait: float = 0.0) -> list[Message]:
        ...

    def dead_letters(self, limit: int = 100) -> list[Message]:
        ...

    def redrive(self) -> int:
        """Move every dead letter back to the queue; return how many."""
        ...

    def depth(self) -> dict[str, int]:
        """``{"visible": n, "in_flight": n, "dead": n}``."""
        ...

    def expire(self, before: float, *, limit: int = 1000, dry_run: bool = False) -> Removed:
        """Drop up to ``limit`` messages of the queue and its DLQ first sent before ``before``, received or not;
        ``dry_run``: count them only. A queue that expires messages itself (SQS: its message retention period)
        drops nothing here."""
        ...


class EventBus(Protocol):
    """A topic that fans CloudEvents out to named subscriber queues, filtered by type."""

    def publish(self, event: Mapping[str, Any]) -> None:
        ...

    def subscriber(self, name: str) -> WorkQueue:
        """The queue behind subscriber ``name``."""
        ...


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One published event as the event log keeps it: the CloudEvent itself (its ``id`` unchanged), when it
    was published (epoch seconds), and ``cursor``, its place in the log (opaque; pass it to resume after it)."""

    event: Mapping[str, Any]
    published_at: float
    cursor: str


class EventLog(Protocol):
    """Every event the bus published, in publish order, kept for the log's retention: what replay reads.

    An event is in the log once it was published (fanned out), never while its publish is in progress,
    and once however often it was published. Events older than the retention are never returned (the
    store may still hold them until its clean-up runs).
    """

    def page(self, *, since: float | None = None, until: float | None = None, types: Collection[str] | None = None,
             tenants: Collection[str] | None = None, cursor: str | None = None,
             limit: int = 100) -> tuple[list[LoggedEvent], str | None]:
        """Up to ``limit`` events published at or after ``since`` and before ``until`` (``None``: from the
        retention's start, to the last one published), oldest first, of ``types`` (``None``: all) and ``tenants``
        (``None``: every tenant; an event without a tenant matches none), after ``cursor`` (a previous answer's).
        The second value is the cursor of the next page, or ``None`` when the range is exhausted; a page may be
        short, even empty, with a cursor."""
        ...


class Provider(Protocol):
    """EvoLink, or anything that speaks its API (the sandbox)."""

    def create_task(self, body: Mapping[str, Any], *, idempotency_key: str) -> Task:
        ...

    def get_task(self, task_id: str) -> Task:
        ...


class KeyStore(Protocol):
    """API keys made at run time (``seedance-relay keys create``). Only a key's sha256 is stored, never the key."""

    def add_key(self, key: ApiKey) -> None:
        """Store ``key`` (its id and digest are new)."""
        ...

    def key_by_digest(self, digest: str) -> ApiKey | None:
        """The key whose sha256 hex digest is ``digest``, revoked or not; ``None`` if there is none (one lookup)."""
        ...

    def keys(self) -> list[ApiKey]:
        """Every stored key, oldest first."""
        ...

    def revoke_key(self, key_id: str, now: float) -> ApiKey:
        """Mark key ``key_id`` revoked at ``now`` (again: no change); ``NotFound`` if there is no such key."""
        ...


class BudgetLedger(Protocol):
    """Credits held and spent per tenant and period, and the budgets set at run time.

    Every hold is keyed by its job id, so each call is safe to repeat: a second ``hold`` for the
    same job holds nothing more, and a second ``settle`` changes nothing.
    """

    def hold(self, tenant: str, period: str, job_id: str, credits: float, *, limit: float | None) -> bool:
        """Hold ``credits`` for ``job_id`` unless held + spent + ``credits`` would pass ``limit`` (``None``: no
        limit), in one conditional write, so that concurrent holds never pass it together. Returns whether the
        job holds (``False``: refused). A job that already holds answers ``True`` and holds nothing more; the
        totals are :meth:`usage`'s to read (a hold reads nothing it does not need)."""
        ...

    def settle(self, tenant: str, period: str, job_id: str, credits: float, *, held: float | None = None) -> None:
        """Turn the hold of ``job_id`` into ``credits`` spent (``0`` releases it). No hold, or settled: nothing.

        ``held``: what the hold took, when the caller knows it (the job records it, with the hold's tenant and
        period); a store may then settle without reading the hold first."""
        ...

    def usage(self, tenant: str, period: str) -> Usage:
        """The tenant's held and spent credits and job count in ``period`` (zeros if it has none)."""
        ...

    def usages(self, period: str) -> list[Usage]:
        """Every tenant with a hold or spending in ``period``, by tenant name."""
        ...

    def set_budget(self, tenant: str, budget: Budget | None) -> None:
        """Set (``None``: remove) the run-time budget of ``tenant``; it overrides ``RELAY_BUDGETS``."""
        ...

    def budgets(self) -> dict[str, Budget]:
        """The budgets set at run time, by tenant."""
        ...


@dataclass(frozen=True, slots=True)
class SlotLease:
    """A job's hold on one of the relay's places at EvoLink, valid until ``until`` unless renewed."""

    job_id: str
    tenant: str
    until: float


class SlotPool(Protocol):
    """The relay's tasks in flight at EvoLink, as leases: a dead holder's slot frees itself when its lease ends.

    Only leases whose ``until`` is after ``now`` count; a lease with ``until <= now`` has expired
    and is not in flight. ``acquire`` and ``renew`` never shorten a lease. An expired lease that was
    never released stays listed by ``expired`` for at least 7 days, for the reconciler.
    """

    def acquire(self, job_id: str, tenant: str, *, now: float, until: float, cap: int,
                tenant_cap: int | None) -> bool:
        """Take a slot for ``job_id`` until ``until`` unless ``cap`` unexpired leases exist, or ``tenant_cap`` of
        ``tenant``'s, in one conditional write (concurrent acquires never pass a cap together). A job that
        already holds a slot keeps it, with ``until`` extended, and gets ``True``."""
        ...

    def renew(self, job_id: str, *, now: float, until: float) -> bool:
        """Extend the lease of ``job_id`` to ``until``; ``False`` if it holds none (or it expired before ``now``)."""
        ...

    def release(self, job_id: str) -> None:
        """Give the slot of ``job_id`` back; no lease: nothing."""
        ...

    def leases(self, now: float) -> list[SlotLease]:
        """The unexpired leases, soonest to end first."""
        ...

    def expired(self, now: float, limit: int = 100) -> list[SlotLease]:
        """Leases that ended before ``now`` and were not released (their holder died), oldest first."""
        ...
