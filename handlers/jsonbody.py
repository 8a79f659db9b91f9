"""Reading a JSON object from bytes, with errors that name the field."""

from __future__ import annotations

import json
from typing import Any

from handlers.errors import InvalidRequest, Violation

__all__ = ["parse_object"]


def parse_object(raw: bytes | str, *, what: str = "body", field: str = "$") -> dict[str, Any]:
    """``raw`` as a JSON object, or ``InvalidRequest`` saying why it is not one."""
    try:
        value = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest([Violation(field, "invalid_json", f"{what} is not JSON: {exc}")]) from exc
    if not isinstance(value, dict):
        raise InvalidRequest([Violation(field, "invalid_type", f"{what} must be a JSON object")])
    return value
