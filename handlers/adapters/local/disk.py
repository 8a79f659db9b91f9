"""What the local adapters say when the disk under them fails: a full disk, and no paths.

Error messages may reach an API answer, so they never name a file: an ``OSError`` is
described by its ``strerror`` alone (its ``filename`` stays on the chained original, which
the log shows). A write refused for lack of room (``ENOSPC``, ``EDQUOT``, ``EFBIG``: no
space, quota exhausted, file size limit) is :class:`~handlers.base.errors.StorageFull`.
"""

from __future__ import annotations

import errno

from handlers.base.errors import StorageFull

__all__ = ["FULL_ERRNOS", "describe", "is_full", "storage_full"]

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_full(exc: OSError) -> bool:
    """Whether ``exc`` says there is no room left to write."""
    return exc.errno in FULL_ERRNOS


def describe(exc: OSError) -> str:
    """``exc`` in words, without the file name ``str(exc)`` would add."""
    return exc.strerror or type(exc).__name__


def storage_full(store: str) -> StorageFull:
    """The error for a full disk under ``store`` (``"the blob store"``); raise it ``from`` the cause."""
    return StorageFull(f"{store} is out of space: the disk or volume it writes to is full",
                       code="storage_full")
