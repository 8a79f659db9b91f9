"""botocore's errors turned into the project's, at the adapter boundary.

``aws_errors(StorageError, "put jobs/x")`` wraps one call. Every AWS error code the
adapters meet is looked up in one table, :data:`AWS_CODES`, which gives the project's
stable snake_case ``code`` and, for two of them, the exception class:

    conflict          ``Conflict``: a condition did not hold (another writer got there first)
    not_found         ``NotFound``: no such object
    missing_resource  a table, bucket or topic is missing: the adapter's error, since that is a
                      broken deployment, not a missing job; a missing queue is ``NotFound``, so
                      that an optional dead-letter queue may be absent
    throttled         AWS asked us to slow down
    access_denied     the credentials may not do this
    unavailable       no connection, or a timeout (a ``BotoCoreError``)

Any other code leaves as the adapter's error class with that class's own code
(``storage_error``, ``queue_error``). The AWS code itself is never a ``code`` of ours: it
stays in the message, and as ``aws_code`` on the error (see :func:`aws_code`) for logs. A
``BotoCoreError``'s ``aws_code`` is its class name. The original error is kept as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from handlers.base.errors import Conflict, NotFound, RelayError

__all__ = ["AWS_CODES", "CONDITION_FAILED", "aws_code", "aws_errors", "error_code", "our_code", "translate",
           "translated"]

CONDITION_FAILED = "ConditionalCheckFailedException"

# AWS error code → (the project's class, or None for the adapter's own; the project's code)
AWS_CODES: dict[str, tuple[type[RelayError] | None, str]] = {
    **dict.fromkeys([CONDITION_FAILED, "TransactionConflictException", "PreconditionFailed", "412",
                     "ConditionalRequestConflict"], (Conflict, "conflict")),
    **dict.fromkeys(["NoSuchKey", "404"], (NotFound, "not_found")),
    **dict.fromkeys(["AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"], (NotFound, "missing_resource")),
    **dict.fromkeys(["NoSuchBucket", "ResourceNotFoundException", "NotFound", "NotFoundException"],
                    (None, "missing_resource")),
    **dict.fromkeys(["ThrottlingException", "Throttling", "ProvisionedThroughputExceededException", "SlowDown",
                     "RequestLimitExceeded", "RequestThrottled", "TooManyRequestsException",
                     "AWS.SimpleQueueService.RequestThrottled"], (None, "throttled")),
    **dict.fromkeys(["AccessDenied", "AccessDeniedException", "AuthorizationError", "UnrecognizedClientException",
                     "InvalidClientTokenId", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                     "ExpiredTokenException", "KMS.AccessDeniedException"], (None, "access_denied")),
}
_UNAVAILABLE = (None, "unavailable")


def error_code(exc: ClientError) -> str:
    """The AWS error code of ``exc`` (``"Unknown"`` if the answer carried none)."""
    return str(exc.response.get("Error", {}).get("Code") or "Unknown")


def _lookup(code: str) -> tuple[type[RelayError] | None, str | None]:
    if code in AWS_CODES:
        return AWS_CODES[code]
    if code.startswith("AccessDenied"):
        return AWS_CODES["AccessDenied"]
    return None, None


def our_code(exc: ClientError | BotoCoreError, error: type[RelayError]) -> str:
    """The project's code for ``exc`` in an adapter whose error class is ``error``."""
    if isinstance(exc, BotoCoreError):
        return _UNAVAILABLE[1] if isinstance(exc, BotoConnectionError | HTTPClientError) else error.code
    return _lookup(error_code(exc))[1] or error.code


def translated(error: type[RelayError], message: str, aws: str) -> RelayError:
    """The project's error for the AWS code ``aws`` (from an answer, or a batch entry that failed)."""
    kind, code = _lookup(aws)
    result = (kind or error)(message, code=code or error.code)
    result.aws_code = aws
    return result


def translate(exc: ClientError | BotoCoreError, error: type[RelayError], what: str) -> RelayError:
    """The project's error for ``exc``, raised while doing ``what`` in an adapter whose error is ``error``."""
    if isinstance(exc, BotoCoreError):
        result = error(f"{what}: {exc}", code=our_code(exc, error))
        result.aws_code = type(exc).__name__
        return result
    code = error_code(exc)
    message = exc.response.get("Error", {}).get("Message") or str(exc)
    return translated(error, f"{what}: {code}: {message}", code)


def aws_code(error: BaseException) -> str | None:
    """The AWS error code (or botocore exception name) behind one of our errors, for logs; ``None`` if none."""
    value = getattr(error, "aws_code", None)
    return value if isinstance(value, str) else None


@contextmanager
def aws_errors(error: type[RelayError], what: str) -> Iterator[None]:
    """Translate any botocore error raised inside (see :func:`translate`)."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, error, what) from exc
