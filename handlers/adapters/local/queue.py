"""A work queue in a SQLite table, with SQS semantics.

At-least-once delivery: ``receive`` hides each message it hands out for
``visibility_timeout`` seconds and gives it a fresh receipt; ``ack`` deletes it only
while that receipt is still the current one. A receipt goes stale when the timeout ran
out and another ``receive`` handed the message out again: acking with it is then a no-op
(the newer holder owns the message), exactly as SQS ignores an old receipt handle.
A message already received ``max_receives`` times is moved to the dead-letter queue
(``<name>:dlq``) instead of being delivered again (SQS redrive policy). An acknowledged message
is deleted; :meth:`SqliteWorkQueue.expire` drops the ones nobody acknowledged in time, dead or
not (SQS's message retention period): a message's id starts with the time it was sent, so the
``(queue, id)`` index finds the old ones.

Every queue on a file shares the ``messages`` table, keyed by ``(queue, id)``; several
queues (and the event bus's subscriber queues) can live in one database. ``receive``
runs in ``BEGIN IMMEDIATE``, so concurrent threads and processes never take the same
message twice.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from handlers.adapters.local.sqlite import SqliteDatabase
from handlers.base.errors import QueueError
from handlers.ports import Message, Removed

__all__ = ["DLQ_SUFFIX", "SCHEMA", "SqliteWorkQueue", "enqueue", "id_bound", "message_id"]

DLQ_SUFFIX = ":dlq"
SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    sent_at REAL NOT NULL,
    UNIQUE (queue, id)
);
CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue, visible_at, seq);
"""


_dump = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps(…, separators=…) without a new encoder per call
_EXPIRED = ("SELECT seq, length(CAST(body AS BLOB)) FROM messages WHERE queue IN (?, ?) AND id < ? AND sent_at < ?"
            " LIMIT ?")
_INSERT = ("INSERT INTO messages (queue, id, body, visible_at, receive_count, sent_at)"
           " VALUES (?, ?, ?, ?, 0, ?)")


def message_id(now: float | None = None) -> str:
    """A new message id: a UUIDv7 as 32 hex digits (milliseconds since the epoch at ``now``, by default the
    time of day, then 74 random bits).

    Ids that grow with time land at the end of the ``(queue, id)`` index instead of at random
    places in it, so an insert dirties one index page rather than a fresh one each time (random
    ids made the insert cost grow with the table); and the ids of the messages sent before a time
    are one range of that index (:func:`id_bound`).
    """
    rand = int.from_bytes(os.urandom(10), "big")
    millis = time.time_ns() // 1_000_000 if now is None else _millis(now)
    value = (millis << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | rand & 0x3FFF_FFFF_FFFF_FFFF)
    return f"{value:032x}"


def id_bound(before: float) -> str:
    """Every id :func:`message_id` made for a time before ``before`` (to the millisecond) sorts below this."""
    return f"{_millis(before) << 80:032x}"


def _millis(seconds: float) -> int:
    return min(max(int(seconds * 1000), 0), (1 << 48) - 1)


def enqueue(connection: sqlite3.Connection, queue: str, body: Mapping[str, Any], *,
            now: float, delay: float = 0.0) -> str:
    """Insert one message into ``queue`` on ``connection`` (inside the caller's transaction, if any)."""
    new_id = message_id(now)
    connection.execute(_INSERT, (queue, new_id, _dump(body), now + max(delay, 0.0), now))
    return new_id


class SqliteWorkQueue:
    """:class:`~handlers.ports.WorkQueue` named ``name`` in the SQLite file at ``path``.

    ``database`` lets a queue share another adapter's open connections to the same file
    (the event bus does this); the owner of the database closes it. ``sleep`` is what
    ``receive(wait=…)`` waits with between polls, measured by ``clock``.
    """

    def __init__(self, path: Path, name: str, *, visibility_timeout: float = 60.0, max_receives: int = 5,
                 clock: Callable[[], float] = time.time, poll_interval: float = 0.05,
                 sleep: Callable[[float], None] = time.sleep, database: SqliteDatabase | None = None) -> None:
        if max_receives < 1:
            raise ValueError("max_receives must be at least 1")
        if database is not None and database.path != Path(path):
            raise ValueError(f"database is {database.path}, not {path}")
        self.name = name
        self.dead_letter_name = name + DLQ_SUFFIX
        self.visibility_timeout = visibility_timeout
        self.max_receives = max_receives
        self._clock = clock
        self._sleep = sleep
        self._poll_interval = poll_interval
        self._owns_database = database is None
        self._database = database or SqliteDatabase(path, schema=SCHEMA, error=QueueError)

    def send(self, body: Mapping[str, Any], *, delay: float = 0.0) -> str:
        with self._database.translated():
            return enqueue(self._database.connection(), self.name, body, now=self._clock(), delay=delay)

    def send_batch(self, bodies: Sequence[Mapping[str, Any]]) -> list[str]:
        """Every body in one transaction: one commit for the lot."""
        now = self._clock()
        ids = [message_id(now) for _ in bodies]
        rows = [(self.name, new_id, _dump(body), now, now) for new_id, body in zip(ids, bodies, strict=True)]
        with self._database.transaction() as connection:
            connection.executemany(_INSERT, rows)
        return ids

    def receive(self, *, max_messages: int = 10, wait: float = 0.0) -> list[Message]:
        """Up to ``max_messages`` visible messages; polls up to ``wait`` seconds for one.

        Oldest first: the message visible the longest (``visible_at``, then send order), so
        a message put back by a timeout or ``retry_later`` queues behind the ones waiting.
        """
        deadline = self._clock() + wait
        while True:
            messages = self._receive_now(max(max_messages, 1))
            remaining = deadline - self._clock()
            if messages or remaining <= 0:
                return messages
            self._sleep(min(self._poll_interval, remaining))

    def ack(self, message: Message) -> None:
        """Delete ``message`` if its receipt is still current; a stale receipt is a no-op."""
        with self._database.translated():
            self._database.connection().execute(
                "DELETE FROM messages WHERE queue = ? AND id = ? AND receipt = ?",
                (self.name, message.id, message.receipt))

    def retry_later(self, message: Message, delay: float) -> None:
        """Make ``message`` visible again after ``delay`` seconds, if its receipt is still current."""
        with self._database.translated():
            self._database.connection().execute(
                "UPDATE messages SET visible_at = ? WHERE queue = ? AND id = ? AND receipt = ?",
                (self._clock() + max(delay, 0.0), self.name, message.id, message.receipt))

    def dead_letters(self, limit: int = 100) -> list[Message]:
        """The dead-letter queue's messages, oldest first (receipt ``""``: they are not in flight)."""
        with self._database.translated():
            rows = self._database.connection().execute(
                "SELECT id, body, receive_count FROM messages WHERE queue = ? ORDER BY seq LIMIT ?",
                (self.dead_letter_name, limit)).fetchall()
        return [Message(id=row[0], body=json.loads(row[1]), receipt="", receive_count=row[2]) for row in rows]

    def redrive(self) -> int:
        with self._database.translated():
            return self._database.connection().execute(
                "UPDATE messages SET queue = ?, visible_at = ?, receive_count = 0, receipt = NULL"
                " WHERE queue = ?", (self.name, self._clock(), self.dead_letter_name)).rowcount

    def depth(self) -> dict[str, int]:
        """``visible`` now; ``in_flight``: not visible now (received, retried later, or sent with a delay)."""
        with self._database.translated():
            visible, hidden, dead = self._database.connection().execute(
                "SELECT COALESCE(SUM(queue = ?1 AND visible_at <= ?3), 0),"
                " COALESCE(SUM(queue = ?1 AND visible_at > ?3), 0), COALESCE(SUM(queue = ?2), 0)"
                " FROM messages WHERE queue IN (?1, ?2)",
                (self.name, self.dead_letter_name, self._clock())).fetchone()
        return {"visible": int(visible), "in_flight": int(hidden), "dead": int(dead)}

    def expire(self, before: float, *, limit: int = 1000, dry_run: bool = False) -> Removed:
        """Delete up to ``limit`` messages of the queue and its DLQ sent before ``before``: one range of the
        ``(queue, id)`` index each, in one transaction; ``bytes`` counts their bodies."""
        found = (self.name, self.dead_letter_name, id_bound(before), before, max(limit, 0))
        if dry_run:
            with self._database.translated():
                rows = self._database.connection().execute(_EXPIRED, found).fetchall()
        else:
            with self._database.transaction() as connection:
                rows = connection.execute(_EXPIRED, found).fetchall()
                connection.executemany("DELETE FROM messages WHERE seq = ?", [(row[0],) for row in rows])
        return Removed(len(rows), sum(row[1] for row in rows))

    def close(self) -> None:
        """Close the connections this queue opened (not those of a shared ``database``)."""
        if self._owns_database:
            self._database.close()

    def _receive_now(self, max_messages: int) -> list[Message]:
        now = self._clock()
        with self._database.transaction() as connection:
            delivered: list[Message] = []
            seen: list[int] = []
            while len(delivered) < max_messages:
                wanted = max_messages - len(delivered)
                rows = connection.execute(
                    "SELECT seq, id, body, receive_count FROM messages WHERE queue = ? AND visible_at <= ?"
                    " AND seq NOT IN (SELECT value FROM json_each(?)) ORDER BY visible_at, seq LIMIT ?",
                    (self.name, now, json.dumps(seen), wanted)).fetchall()
                seen += [row[0] for row in rows]
                delivered += self._take(connection, rows, now)
                if len(rows) < wanted:
                    break
            return delivered

    def _take(self, connection: sqlite3.Connection, rows: list[Any], now: float) -> list[Message]:
        """Dead-letter the exhausted rows and hand the others out; return those handed out."""
        exhausted = [(self.dead_letter_name, now, row[0]) for row in rows if row[3] >= self.max_receives]
        connection.executemany(
            "UPDATE messages SET queue = ?, visible_at = ?, receipt = NULL WHERE seq = ?", exhausted)
        taken = [Message(id=row[1], body=json.loads(row[2]), receipt=uuid.uuid4().hex,
                         receive_count=row[3] + 1) for row in rows if row[3] < self.max_receives]
        connection.executemany(
            "UPDATE messages SET visible_at = ?, receive_count = ?, receipt = ? WHERE queue = ? AND id = ?",
            [(now + self.visibility_timeout, m.receive_count, m.receipt, self.name, m.id) for m in taken])
        return taken
