"""The event log of the SQLite event bus: its ``events`` table, read in publish order.

The bus writes each event into ``events`` in the same transaction as its fan-out
(:mod:`handlers.adapters.local.bus`), so a row exists once an event was published and never
while it is being published. ``seq`` (the row's autoincrement key) is the publish order and,
as text, the cursor. Reads stop at the retention (``retention_days`` before the clock's now);
:meth:`SqliteEventLog.purge` deletes what is older. A purged id is forgotten by the bus's
publish-once ledger as well: the retention is also how long a repeated publish stays a no-op.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from pathlib import Path

from handlers.adapters.local.bus import SCHEMA
from handlers.adapters.local.sqlite import SqliteDatabase
from handlers.base.errors import InvalidRequest, QueueError, Violation
from handlers.ports import LoggedEvent

__all__ = ["SqliteEventLog"]

DAY = 86_400.0
_INVALID_CURSOR = Violation("cursor", "invalid_cursor", "not a cursor this event log gave out")
_PAGE = (
    "SELECT seq, published_at, event FROM events"
    " WHERE seq > :after AND published_at >= :start AND published_at < :end"
    " AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))"
    " AND (:tenants IS NULL OR json_extract(event, '$.tenant') IN (SELECT value FROM json_each(:tenants)))"
    " ORDER BY seq LIMIT :limit")


def _sequence(cursor: str) -> int:
    if not (cursor.isascii() and cursor.isdigit()):
        raise InvalidRequest([_INVALID_CURSOR])
    return int(cursor)


def _listed(values: Collection[str] | None) -> str | None:
    return None if values is None else json.dumps(sorted(values))


class SqliteEventLog:
    """:class:`~handlers.ports.EventLog` over the event bus's SQLite file at ``path``."""

    def __init__(self, path: Path, *, retention_days: float = 30, clock: Callable[[], float] = time.time) -> None:
        self._database = SqliteDatabase(path, schema=SCHEMA, error=QueueError)
        self.retention_days = retention_days
        self._clock = clock

    def page(self, *, since: float | None = None, until: float | None = None, types: Collection[str] | None = None,
             tenants: Collection[str] | None = None, cursor: str | None = None,
             limit: int = 100) -> tuple[list[LoggedEvent], str | None]:
        now = self._clock()
        after = _sequence(cursor) if cursor is not None else 0
        start = max(now - self.retention_days * DAY, since if since is not None else float("-inf"))
        parameters = {"after": after, "start": start, "end": float("inf") if until is None else until,
                      "types": _listed(types), "tenants": _listed(tenants), "limit": max(limit, 0)}
        with self._database.translated():
            rows = self._database.connection().execute(_PAGE, parameters).fetchall()
        found = [LoggedEvent(event=json.loads(row[2]), published_at=float(row[1]), cursor=str(row[0]))
                 for row in rows]
        return found, (found[-1].cursor if found and len(found) == limit else None)

    def purge(self, before: float) -> int:
        """Delete the events published before ``before``; return how many.

        Events are numbered in publish order, so the first one that is recent enough is found by reading
        only the old ones, and the delete is a range of the primary key: no index on the time is needed
        (and none is written on every publish)."""
        with self._database.transaction() as connection:
            first_kept = connection.execute(
                "SELECT seq FROM events WHERE published_at >= ? ORDER BY seq LIMIT 1", (before,)).fetchone()
            if first_kept is None:
                return connection.execute("DELETE FROM events").rowcount
            return connection.execute("DELETE FROM events WHERE seq < ?", (first_kept[0],)).rowcount

    def close(self) -> None:
        self._database.close()
