"""The project's exception tree.

Every exception carries a machine-readable ``code`` (stable, snake_case) next to its
human message, and the data a caller needs to act on it::

    RelayError
    ├── ConfigurationError          bad or missing settings
    ├── InvalidRequest              a request broke one or more rules (``violations``)
    ├── UnsafeURL                   a URL points somewhere we refuse to go (SSRF guard)
    ├── ProbeFailed                 a reference could not be fetched or read during preflight
    ├── ProviderError               EvoLink answered with an error (``status``, provider ``code``)
    │   ├── ProviderRejected        4xx: fix the request, do not retry as is
    │   ├── ProviderUnavailable     429/5xx/transport failure after the retry budget
    │   └── UnknownOutcome          a create whose outcome is unknown: reconcile, never resubmit blindly
    ├── Unauthorized                missing or wrong credentials or capability token
    ├── Forbidden                   a valid key whose role may not do this (answered 403)
    ├── BudgetExceeded              a tenant's budget cannot hold a job's estimate (answered 402)
    ├── PayloadTooLarge             a body over its size limit
    ├── NotFound                    no such job, task or object
    ├── Conflict                    a conditional write lost a race (state moved on)
    ├── UnsupportedMediaType        a body whose bytes are not the type it declares (answered 415)
    ├── StorageError                the blob store failed
    │   └── StorageFull             the disk or volume behind a store is full (answered 503)
    ├── QueueError                  the work queue or event bus failed
    └── DownloadFailed              a result could not be copied (``permanent`` tells retry from give up)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BudgetExceeded",
    "ConfigurationError",
    "Conflict",
    "DownloadFailed",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "ProbeFailed",
    "ProviderError",
    "ProviderRejected",
    "ProviderUnavailable",
    "QueueError",
    "RelayError",
    "StorageError",
    "StorageFull",
    "Unauthorized",
    "UnknownOutcome",
    "UnsafeURL",
    "UnsupportedMediaType",
    "Violation",
]


class RelayError(Exception):
    """Root of every error the project raises on purpose."""

    code = "relay_error"
    aws_code: str | None = None
    """The AWS error code an adapter translated into this error, for logs; never part of an answer."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class ConfigurationError(RelayError):
    code = "configuration_error"


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: ``field`` is a JSON path such as ``image_urls[3]``."""

    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class InvalidRequest(RelayError):
    code = "invalid_request"

    def __init__(self, violations: Sequence[Violation], message: str | None = None) -> None:
        self.violations = tuple(violations)
        summary = "; ".join(f"{v.field}: {v.message}" for v in self.violations[:5])
        super().__init__(message or f"invalid request: {summary}")

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "errors": [v.as_dict() for v in self.violations]}


class UnsafeURL(RelayError):
    code = "unsafe_url"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"refused {url!r}: {reason}")
        self.url = url
        self.reason = reason


class ProbeFailed(RelayError):
    code = "probe_failed"


class ProviderError(RelayError):
    """EvoLink answered with an error; ``code`` is the provider's own code as a string."""

    code = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        body: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.body = dict(body or {})
        self.retry_after = retry_after

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "status": self.status}


class ProviderRejected(ProviderError):
    code = "provider_rejected"


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"


class UnknownOutcome(ProviderError):
    code = "unknown_outcome"


class Unauthorized(RelayError):
    code = "unauthorized"


class Forbidden(RelayError):
    code = "forbidden"


class BudgetExceeded(RelayError):
    """The tenant's held plus spent credits plus this job's estimate would pass its budget."""

    code = "budget_exceeded"

    def __init__(self, message: str, *, tenant: str, budget: float, remaining: float, resets_at: str) -> None:
        super().__init__(message)
        self.tenant, self.budget, self.remaining, self.resets_at = tenant, budget, remaining, resets_at

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "tenant": self.tenant, "budget": self.budget, "remaining": self.remaining,
                "resets_at": self.resets_at}


class PayloadTooLarge(RelayError):
    code = "payload_too_large"


class NotFound(RelayError):
    code = "not_found"


class Conflict(RelayError):
    code = "conflict"


class StorageError(RelayError):
    code = "storage_error"


class StorageFull(StorageError):
    """The disk or volume behind a store is full; the message never names a path."""

    code = "storage_full"


class UnsupportedMediaType(RelayError):
    code = "unsupported_media_type"


class QueueError(RelayError):
    code = "queue_error"


class DownloadFailed(RelayError):
    code = "download_failed"

    def __init__(self, message: str, *, permanent: bool, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.permanent = permanent
