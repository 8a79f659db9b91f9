"""An event topic in SQLite that fans CloudEvents out to subscriber queues.

``publish`` runs in one transaction: the event goes into the ``events`` log keyed by
its CloudEvent ``id`` (a second publish of the same id is a no-op, so a replay never
fans out twice) and, only when it is new, one message per interested subscriber goes
into that subscriber's queue, ``sub:<name>`` in the same ``messages`` table as
:class:`~handlers.adapters.local.queue.SqliteWorkQueue`. A subscriber names the event
``type`` values it wants, or ``"*"`` for all of them (SNS filter policies, in small).
The log keeps every event in publish order for ``events tail``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from handlers.adapters.local import queue
from handlers.adapters.local.queue import SqliteWorkQueue, enqueue
from handlers.adapters.local.sqlite import SqliteDatabase
from handlers.base.errors import NotFound, QueueError

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
        self._wanted = {name: frozenset(types) for name, types in subscribers.items()}
        self._queues = {
            name: SqliteWorkQueue(path, SUBSCRIBER_PREFIX + name, visibility_timeout=visibility_timeout,
                                  max_receives=max_receives, clock=clock, sleep=sleep,
                                  database=self._database)
            for name in self._wanted}

    def publish(self, event: Mapping[str, Any]) -> None:
        """Log ``event`` and fan it out, once per CloudEvent ``id``."""
        event_id, event_type = _identity(event)
        now = self._clock()
        with self._database.transaction() as connection:
            inserted = connection.execute(
                "INSERT OR IGNORE INTO events (id, type, published_at, event) VALUES (?, ?, ?, ?)",
                (event_id, event_type, now, json.dumps(event, separators=(",", ":")))).rowcount
            if inserted:
                for name in self._interested(event_type):
                    enqueue(connection, SUBSCRIBER_PREFIX + name, event, now=now)

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

    def _interested(self, event_type: str) -> list[str]:
        return [name for name, types in self._wanted.items() if ALL_TYPES in types or event_type in types]


def _identity(event: Mapping[str, Any]) -> tuple[str, str]:
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str) or not event_type:
        raise QueueError("a CloudEvent needs a non-empty string 'id' and 'type'", code="invalid_event")
    return event_id, event_type
