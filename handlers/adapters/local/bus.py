"""An event topic in SQLite that fans CloudEvents out to subscriber queues.

``publish`` is once per CloudEvent ``id`` through the shared publish-once algorithm
(:class:`~handlers.adapters.ledger.EventLedger`), whose hooks here are one transaction:
the claim inserts the event into the ``events`` log keyed by its ``id`` (an id already
there means published: a replay never fans out twice), the fan-out puts one message per
interested subscriber into that subscriber's queue, ``sub:<name>`` in the same ``messages``
table as :class:`~handlers.adapters.local.queue.SqliteWorkQueue`, on the claim's
connection, and recording commits (releasing rolls back). A racing publisher waits for
the write lock, so it only ever finds an id published. A subscriber names the event
``type`` values it wants, or ``"*"`` for all of them, and optionally the tenants whose events
it wants (``tenant:<name>``; :func:`handlers.domain.events.wants`): SNS filter policies, in small.
The log keeps every event in publish order for ``events tail``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from handlers.adapters.ledger import Claimed, EventLedger, Held, event_identity
from handlers.adapters.local import queue
from handlers.adapters.local.queue import SqliteWorkQueue, enqueue
from handlers.adapters.local.sqlite import SqliteDatabase
from handlers.base.errors import NotFound, QueueError
from handlers.domain.events import wants

__all__ = ["ALL_TYPES", "SCHEMA", "SUBSCRIBER_PREFIX", "SqliteEventBus"]

ALL_TYPES = "*"
SUBSCRIBER_PREFIX = "sub:"
SCHEMA = queue.SCHEMA + """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    published_at REAL NOT NULL,
    event TEXT NOT NULL
);
"""


class SqliteEventBus:
    """:class:`~handlers.ports.EventBus` in the SQLite file at ``path``.

    ``subscribers`` maps each subscriber's name to the event types it wants (``"*"``: all).
    The subscriber queues take ``visibility_timeout``, ``max_receives``, ``clock`` and ``sleep``.
    """

    def __init__(self, path: Path, subscribers: Mapping[str, Sequence[str]], *,
                 visibility_timeout: float = 60.0, max_receives: int = 5,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self._database = SqliteDatabase(path, schema=SCHEMA, error=QueueError)
        self._clock = clock
        self._ledger = _SqliteLedger(self._database, clock=clock, sleep=sleep)
        self._wanted = {name: frozenset(types) for name, types in subscribers.items()}
        self._queues = {
            name: SqliteWorkQueue(path, SUBSCRIBER_PREFIX + name, visibility_timeout=visibility_timeout,
                                  max_receives=max_receives, clock=clock, sleep=sleep,
                                  database=self._database)
            for name in self._wanted}

    def publish(self, event: Mapping[str, Any]) -> None:
        """Log ``event`` and fan it out, once per CloudEvent ``id``."""
        _, event_type = event_identity(event)
        self._ledger.once(event, lambda connection: self._fan_out(connection, event, event_type))

    def subscriber(self, name: str) -> SqliteWorkQueue:
        try:
            return self._queues[name]
        except KeyError:
            raise NotFound(f"no subscriber {name!r}") from None

    def subscriber_names(self) -> list[str]:
        return sorted(self._queues)

    def events(self, *, after: int = 0, limit: int = 100,
               types: Sequence[str] | None = None) -> list[tuple[int, dict[str, Any]]]:
        """``(sequence number, event)`` pairs after ``after``, in publish order, optionally of ``types``."""
        wanted = json.dumps(list(types)) if types is not None else None
        with self._database.translated():
            rows = self._database.connection().execute(
                "SELECT seq, event FROM events WHERE seq > ?1"
                " AND (?2 IS NULL OR type IN (SELECT value FROM json_each(?2))) ORDER BY seq LIMIT ?3",
                (after, wanted, limit)).fetchall()
        return [(int(row[0]), json.loads(row[1])) for row in rows]

    def close(self) -> None:
        self._database.close()

    def _fan_out(self, connection: sqlite3.Connection, event: Mapping[str, Any], event_type: str) -> None:
        now = self._clock()
        with self._database.translated():
            for name in self._interested(event_type, event.get("tenant")):
                enqueue(connection, SUBSCRIBER_PREFIX + name, event, now=now)

    def _interested(self, event_type: str, tenant: object) -> list[str]:
        return [name for name, items in self._wanted.items()
                if wants(items, event_type, tenant if isinstance(tenant, str) else None)]


class _SqliteLedger(EventLedger[sqlite3.Connection]):
    """The ``events`` log as the ledger: a claim is a write transaction holding the new log row."""

    def __init__(self, database: SqliteDatabase, *, clock: Callable[[], float],
                 sleep: Callable[[float], None]) -> None:
        super().__init__(clock=clock, sleep=sleep)
        self._database = database

    def _claim(self, event_id: str, event: Mapping[str, Any]) -> Claimed[sqlite3.Connection] | Held:
        connection = self._database.begin()
        try:
            with self._database.translated():
                inserted = connection.execute(
                    "INSERT OR IGNORE INTO events (id, type, published_at, event) VALUES (?, ?, ?, ?)",
                    (event_id, event["type"], self._clock(), json.dumps(event, separators=(",", ":")))).rowcount
        except BaseException:
            self._database.rollback(connection)
            raise
        if inserted:
            return Claimed(event_id, connection)
        self._database.rollback(connection)
        return Held.PUBLISHED

    def _record(self, claim: Claimed[sqlite3.Connection]) -> None:
        self._database.commit(claim.handle)

    def _release(self, claim: Claimed[sqlite3.Connection]) -> None:
        self._database.rollback(claim.handle)
