"""One parser for a job request, used by ``POST /v1/jobs`` and by ``seedance-relay validate``.

:func:`parse_job_request` turns the raw bytes a caller sends into the EvoLink request body and
the relay's own options (``metadata``), refusing what the API refuses at the JSON level:
over-size bodies, bytes that are not UTF-8, invalid JSON, duplicate keys, ``NaN``, nesting
beyond :data:`handlers.base.jsonbody.MAX_DEPTH`, a body that is not an object. The request's
content is then checked by :func:`handlers.provider.validation.validate_request`, and the options by
:func:`check_metadata` and :func:`check_cancel_after`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from handlers.base.errors import InvalidRequest, Violation
from handlers.base.jsonbody import parse_object
from handlers.domain.contract import METADATA_MAX_BYTES, REQUEST_BODY_MAX

__all__ = ["CANCEL_AFTER_MAX", "OPTION_FIELDS", "JobRequest", "check_cancel_after", "check_metadata",
           "parse_job_request"]

OPTION_FIELDS = ("metadata", "cancel_after")  # fields of POST /v1/jobs that the relay keeps and EvoLink never sees
CANCEL_AFTER_MAX = 7 * 86_400
"""The longest deadline a job may ask for, in seconds (a week)."""


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A create request split in two: what goes to EvoLink, and what the relay keeps."""

    body: dict[str, Any]
    metadata: Any = field(default_factory=dict)
    cancel_after: Any = None


def parse_job_request(raw: bytes) -> JobRequest:
    """``raw`` as a :class:`JobRequest`; ``InvalidRequest`` (code ``too_large`` or ``invalid_json``
    or ``invalid_type``) when it cannot be read as one. Content rules are not checked here."""
    if len(raw) > REQUEST_BODY_MAX:
        message = f"the body is {len(raw)} bytes; at most {REQUEST_BODY_MAX} bytes are allowed"
        raise InvalidRequest([Violation("$", "too_large", message)])
    body = parse_object(raw, what="the body", strict=True)
    metadata = body.pop("metadata", {})
    return JobRequest(body=body, metadata=metadata, cancel_after=body.pop("cancel_after", None))


def check_cancel_after(cancel_after: object) -> list[Violation]:
    """What is wrong with a job's ``cancel_after``: absent (``None``), or whole seconds from 1 to
    :data:`CANCEL_AFTER_MAX`."""
    if cancel_after is None:
        return []
    if isinstance(cancel_after, bool) or not isinstance(cancel_after, int):
        return [Violation("cancel_after", "invalid_type", "cancel_after must be a whole number of seconds")]
    if not 1 <= cancel_after <= CANCEL_AFTER_MAX:
        message = f"cancel_after must be from 1 to {CANCEL_AFTER_MAX} seconds, got {cancel_after}"
        return [Violation("cancel_after", "out_of_range", message)]
    return []


def check_metadata(metadata: object) -> list[Violation]:
    """What is wrong with a job's ``metadata``: a JSON object of at most ``METADATA_MAX_BYTES``."""
    if not isinstance(metadata, Mapping):
        return [Violation("metadata", "invalid_type", "metadata must be a JSON object")]
    size = len(json.dumps(metadata).encode())
    if size > METADATA_MAX_BYTES:
        message = f"metadata must be at most {METADATA_MAX_BYTES} bytes of JSON, got {size}"
        return [Violation("metadata", "too_large", message)]
    return []
