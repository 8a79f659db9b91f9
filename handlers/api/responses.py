"""Error bodies and size-limited body reading shared by the routes."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from handlers.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ProviderError,
    RelayError,
    Unauthorized,
)

__all__ = ["error_response", "read_limited", "status_for"]

_STATUS: list[tuple[type[RelayError], int]] = [
    (InvalidRequest, 400), (Unauthorized, 401), (NotFound, 404), (Conflict, 409),
    (PayloadTooLarge, 413), (ProviderError, 502),
]


def status_for(exc: RelayError) -> int:
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 500)


def error_response(exc: RelayError, status: int | None = None) -> JSONResponse:
    status = status or status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body: dict[str, Any] = {"error": exc.as_dict()}
    return JSONResponse(body, status_code=status, headers=headers)


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing (413) more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is over the {limit} byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
