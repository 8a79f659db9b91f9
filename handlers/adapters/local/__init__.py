"""The embedded local adapters: the zero-set-up default, durable on disk.

Job store, key store, slot pool, budget ledger, work queues, event bus and its log are SQLite files (WAL, one
connection per thread, safe with several worker threads and processes); the blob store is a folder. Every
adapter has a ``close()`` that releases what it opened.
"""

from __future__ import annotations

from handlers.adapters.local.blobs import FolderBlobStore
from handlers.adapters.local.budgets import SqliteBudgetLedger
from handlers.adapters.local.bus import SqliteEventBus
from handlers.adapters.local.eventlog import SqliteEventLog
from handlers.adapters.local.jobs import SqliteJobStore
from handlers.adapters.local.keys import SqliteKeyStore
from handlers.adapters.local.queue import SqliteWorkQueue
from handlers.adapters.local.slots import SqliteSlotPool
from handlers.adapters.local.sqlite import SqliteDatabase

__all__ = ["FolderBlobStore", "SqliteBudgetLedger", "SqliteDatabase", "SqliteEventBus", "SqliteEventLog",
           "SqliteJobStore", "SqliteKeyStore", "SqliteSlotPool", "SqliteWorkQueue"]
