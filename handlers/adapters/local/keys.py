"""The API keys made at run time, as one table of the local database (the file the jobs are in).

A row is a key's id, the sha256 hex digest of the key (unique: the lookup at every request
reads it through its index), its tenant and role, and when it was made and revoked. The key
itself is never given to the store, so it is never written anywhere.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from handlers.adapters.local.sqlite import SqliteDatabase
from handlers.base.errors import Conflict, NotFound, StorageError
from handlers.domain.tenancy import ApiKey, Role

__all__ = ["SCHEMA", "SqliteKeyStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'submitter', 'reader')),
    created_at REAL NOT NULL,
    revoked_at REAL
);
"""
_COLUMNS = "id, tenant, role, digest, created_at, revoked_at"


class SqliteKeyStore:
    """:class:`~handlers.ports.KeyStore` in the SQLite file ``path`` (share it with the job store)."""

    def __init__(self, path: Path) -> None:
        self._database = SqliteDatabase(path, schema=SCHEMA, error=StorageError)

    def add_key(self, key: ApiKey) -> None:
        """One ``INSERT``; ``Conflict`` if a stored key has the same id or digest."""
        with self._database.translated():
            added = self._database.connection().execute(
                f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",  # noqa: S608
                (key.id, key.tenant, Role(key.role).value, key.digest, key.created_at, key.revoked_at)).rowcount
        if added == 0:
            raise Conflict(f"a key with the id {key.id!r} or the same digest is already stored")

    def key_by_digest(self, digest: str) -> ApiKey | None:
        """One lookup of the ``digest`` index."""
        with self._database.translated():
            row = self._database.connection().execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE digest = ?", (digest,)).fetchone()  # noqa: S608
        return None if row is None else _key(row)

    def keys(self) -> list[ApiKey]:
        with self._database.translated():
            rows = self._database.connection().execute(
                f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id").fetchall()  # noqa: S608
        return [_key(row) for row in rows]

    def revoke_key(self, key_id: str, now: float) -> ApiKey:
        """Set ``revoked_at`` unless it is set, then read the key back, in one transaction."""
        with self._database.transaction() as connection:
            connection.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                               (now, key_id))
            row = connection.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()  # noqa: S608
        if row is None:
            raise NotFound(f"no key {key_id!r}")
        return _key(row)

    def close(self) -> None:
        self._database.close()


def _key(row: sqlite3.Row | tuple[Any, ...]) -> ApiKey:
    key_id, tenant, role, digest, created_at, revoked_at = row
    return ApiKey(id=key_id, tenant=tenant, role=Role(role), digest=digest, created_at=float(created_at),
                  revoked_at=None if revoked_at is None else float(revoked_at))
