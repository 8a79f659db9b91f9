"""One SQLite file, opened once per thread (and per process) with the settings every local adapter needs.

Connections run in autocommit mode (``isolation_level=None``) with WAL journaling,
``synchronous=NORMAL`` and a busy timeout, so readers never block writers and writers
wait for each other instead of failing. A read-modify-write goes through
:meth:`SqliteDatabase.transaction`, which takes the write lock up front (``BEGIN
IMMEDIATE``). Every ``sqlite3.Error`` leaves as the error class the owning adapter chose,
except a full disk (``SQLITE_FULL``, or ``ENOSPC``/``EDQUOT``/``EFBIG`` from the file system),
which leaves as :class:`~handlers.base.errors.StorageFull`. No message names the database file:
messages may reach an API answer, and the file's path is the operator's business (it stays on
the chained original exception, which the log shows).

A new file is made with ``auto_vacuum = INCREMENTAL``, so the pages that deletes free can be given
back to the file system (:meth:`SqliteDatabase.compact`). A file made before that (``auto_vacuum``
``NONE``) is switched when it is opened by one ``VACUUM``, a copy of the whole file, if it is at most
:data:`SWITCH_LIMIT` bytes; a larger one is left as it is (a warning says so) until it is switched by
hand, with the relay stopped (``docs/operations.md``, Retention).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from handlers.adapters.local.disk import describe, is_full, storage_full
from handlers.base.errors import RelayError
from handlers.base.logs import get_logger

__all__ = ["BUSY_TIMEOUT", "SWITCH_LIMIT", "SqliteDatabase"]

BUSY_TIMEOUT = 10.0
SWITCH_LIMIT = 64 * 1024 * 1024
INCREMENTAL = 2  # PRAGMA auto_vacuum's answer for INCREMENTAL

log = get_logger(__name__)


class _Slot:
    """One thread's connection; when the thread ends, the slot is collected and the connection closed."""

    def __init__(self, connection: sqlite3.Connection, key: tuple[int, int]) -> None:
        self.connection = connection
        self.key = key


class SqliteDatabase:
    """Per-thread connections to ``path``; ``schema`` (idempotent DDL) runs once per instance, and
    then ``migrate`` (which brings a file written by an older version up to date, idempotently).

    A connection belongs to the thread (and process) that opened it: a thread that ends
    takes its connection with it, and a forked child opens its own instead of touching
    its parent's.
    """

    def __init__(self, path: Path, *, schema: str, error: type[RelayError],
                 busy_timeout: float = BUSY_TIMEOUT, migrate: Callable[[sqlite3.Connection], None] | None = None,
                 ) -> None:
        self.path = Path(path)
        self._schema = schema
        self._migrate = migrate
        self._error = error
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: dict[int, tuple[int, sqlite3.Connection]] = {}
        self._generation = 0
        self._schema_ready = False

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the schema created) on first use."""
        key = (os.getpid(), self._generation)
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None or slot.key != key:
            slot = _Slot(self._open(), key)
            weakref.finalize(slot, _release, self._lock, self._opened, slot.connection)
            self._local.slot = slot
        return slot.connection

    @contextmanager
    def translated(self) -> Iterator[None]:
        """Turn any ``sqlite3.Error`` (or ``OSError``) raised inside into the adapter's error,
        or into ``StorageFull`` when the disk is full; the message never names the file."""
        try:
            yield
        except sqlite3.Error as exc:
            if _is_full(exc):
                raise storage_full(_STORE) from exc
            name = getattr(exc, "sqlite_errorname", None) or "SQLITE_ERROR"
            raise self._error(f"{_STORE}: {exc}", code=name.lower()) from exc
        except OSError as exc:
            if is_full(exc):
                raise storage_full(_STORE) from exc
            raise self._error(f"{_STORE}: {describe(exc)}", code="os_error") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if the body raises."""
        with self.translated():
            connection = self.connection()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

    def begin(self) -> sqlite3.Connection:
        """``BEGIN IMMEDIATE`` on this thread's connection, for a transaction that spans several calls;
        end it with :meth:`commit` or :meth:`rollback` (:meth:`transaction` is the one-block form)."""
        with self.translated():
            connection = self.connection()
            connection.execute("BEGIN IMMEDIATE")
        return connection

    def commit(self, connection: sqlite3.Connection) -> None:
        """``COMMIT`` what :meth:`begin` started; rolled back if the commit fails."""
        try:
            with self.translated():
                connection.execute("COMMIT")
        except BaseException:
            self.rollback(connection)
            raise

    def rollback(self, connection: sqlite3.Connection) -> None:
        with self.translated():
            if connection.in_transaction:
                connection.execute("ROLLBACK")

    def compact(self) -> int:
        """Give the file's free pages back (``PRAGMA incremental_vacuum``), then fold the write-ahead log into
        the file and truncate it; the bytes by which the file and its log shrank."""
        with self.translated():
            before = self.size()
            connection = self.connection()
            connection.executescript("PRAGMA incremental_vacuum;")  # execute() would free one page per step
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            return max(before - self.size(), 0)

    def size(self) -> int:
        """The bytes of the file and of its write-ahead log."""
        return sum(_file_size(Path(f"{self.path}{suffix}")) for suffix in ("", "-wal"))

    def close(self) -> None:
        """Close every connection this process opened through this instance; later use reopens."""
        with self._lock:
            opened = list(self._opened.values())
            self._opened.clear()
            self._generation += 1
        for pid, connection in opened:
            if pid == os.getpid():
                connection.close()

    def _open(self) -> sqlite3.Connection:
        with self.translated():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=self._busy_timeout,
                                         isolation_level=None, check_same_thread=False)
            try:
                self._configure(connection)
            except BaseException:
                connection.close()
                raise
        with self._lock:
            self._opened[id(connection)] = (os.getpid(), connection)
        return connection

    def _configure(self, connection: sqlite3.Connection) -> None:
        connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        with _SETUP_LOCK:  # threads of one process switch a fresh file to WAL one at a time
            if not self._schema_ready:
                connection.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes on a new file only: before WAL
            _use_wal(connection, self._busy_timeout)
        connection.execute("PRAGMA synchronous = NORMAL")
        if not self._schema_ready:
            connection.executescript(self._schema)
            if self._migrate is not None:
                self._migrate(connection)
            _switch_to_incremental(connection, self.size())
            self._schema_ready = True


_SETUP_LOCK = threading.Lock()
_STORE = "the local database"


def _is_full(exc: sqlite3.Error) -> bool:
    """``SQLITE_FULL`` (SQLite's answer to ``ENOSPC`` and to ``max_page_count``), extended codes included."""
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == sqlite3.SQLITE_FULL


def _use_wal(connection: sqlite3.Connection, patience: float) -> None:
    """Switch to WAL. SQLite answers "locked" at once, without its busy handler, when another
    process switches the same fresh file at the same moment: wait and try again."""
    deadline = time.monotonic() + patience
    while True:
        try:
            (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _switch_to_incremental(connection: sqlite3.Connection, size: int) -> None:
    """Give a file made without incremental vacuum that mode, by one ``VACUUM``, if it is small enough to copy
    at once; a busy file is left for the next open."""
    (mode,) = connection.execute("PRAGMA auto_vacuum").fetchone()
    if mode == INCREMENTAL:
        return
    if size > SWITCH_LIMIT:
        log.warning("storage.vacuum_needed", size=size,
                    note="the database cannot give freed space back until it is switched by hand "
                         "(docs/operations.md, Retention)")
        return
    try:
        connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        connection.execute("VACUUM")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.OperationalError as exc:
        log.info("storage.vacuum_deferred", reason=str(exc))
    else:
        log.info("storage.vacuum_switched", size=size)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _release(lock: threading.Lock, opened: dict[int, tuple[int, sqlite3.Connection]],
             connection: sqlite3.Connection) -> None:
    """Close ``connection`` once its thread is gone, unless ``close()`` already did."""
    with lock:
        owner = opened.pop(id(connection), None)
    if owner is not None and owner[0] == os.getpid():
        connection.close()
