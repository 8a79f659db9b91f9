"""Error bodies and size-limited body reading shared by the routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from handlers.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ProviderError,
    RelayError,
    Unauthorized,
)
from handlers.files import MediaFileResponse
from handlers.logs import get_logger
from handlers.ports import BlobStore

__all__ = ["Endpoint", "answering", "error_response", "read_limited", "status_for", "stored_file"]

log = get_logger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]
_PLAYABLE = ("video/", "audio/", "image/")

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


def answering(endpoint: Endpoint) -> Endpoint:
    """The project's errors as JSON answers; anything else a bare 500 (logged, never shown)."""

    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except RelayError as exc:
            return error_response(exc)
        except Exception:
            log.exception("api.unhandled", path=request.url.path)
            return JSONResponse({"error": {"code": "internal_error", "message": "internal error"}}, status_code=500)

    return wrapper


async def stored_file(blobs: BlobStore, key: str) -> Response:
    """The object at ``key``: from disk with Range support, or streamed whole from elsewhere."""
    stored = await run_in_threadpool(blobs.head, key)
    if stored is None:
        raise NotFound(f"no stored object at {key!r}")
    playable = stored.content_type.startswith(_PLAYABLE)
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; sandbox",
               "Content-Disposition": "inline" if playable else "attachment"}
    media_type = stored.content_type if playable else "application/octet-stream"
    location = urlsplit(blobs.uri(key))
    if location.scheme == "file":
        return MediaFileResponse(url2pathname(location.path), media_type=media_type, headers=headers)
    chunks = await run_in_threadpool(blobs.read, key)
    return StreamingResponse(chunks, media_type=media_type,
                             headers={**headers, "Accept-Ranges": "none", "Content-Length": str(stored.size)})
