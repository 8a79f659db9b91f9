"""botocore's errors turned into the project's, at the adapter boundary.

``aws_errors(StorageError, "put jobs/x")`` wraps one call: a ``ClientError`` leaves as
``Conflict`` (a condition did not hold), ``NotFound`` (no such object or queue) or the
adapter's own error class, each with the AWS error code as its ``code``. A missing table,
bucket or topic is the adapter's error, not ``NotFound``: it is a broken deployment, not
a missing job or object. A ``BotoCoreError`` (no connection, timeout, no credentials)
leaves as the adapter's error class with the botocore exception's name as its ``code``.
The original error is kept as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from handlers.base.errors import Conflict, NotFound, RelayError

__all__ = ["CONFLICT_CODES", "NOT_FOUND_CODES", "aws_errors", "error_code", "translate"]

CONFLICT_CODES = frozenset({
    "ConditionalCheckFailedException", "TransactionConflictException", "PreconditionFailed", "412",
})
NOT_FOUND_CODES = frozenset({
    "NoSuchKey", "404", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
})


def error_code(exc: ClientError) -> str:
    """The AWS error code of ``exc`` (``"Unknown"`` if the answer carried none)."""
    return str(exc.response.get("Error", {}).get("Code") or "Unknown")


def translate(exc: ClientError | BotoCoreError, error: type[RelayError], what: str) -> RelayError:
    """The project's error for ``exc``, raised while doing ``what`` in an adapter whose error is ``error``."""
    if isinstance(exc, BotoCoreError):
        return error(f"{what}: {exc}", code=type(exc).__name__)
    code = error_code(exc)
    message = exc.response.get("Error", {}).get("Message") or str(exc)
    kind: type[RelayError] = error
    if code in CONFLICT_CODES:
        kind = Conflict
    elif code in NOT_FOUND_CODES:
        kind = NotFound
    return kind(f"{what}: {code}: {message}", code=code)


@contextmanager
def aws_errors(error: type[RelayError], what: str) -> Iterator[None]:
    """Translate any botocore error raised inside (see :func:`translate`)."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, error, what) from exc
