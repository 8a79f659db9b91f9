"""Error bodies and size-limited body reading shared by the routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from handlers.base.errors import (
    BudgetExceeded,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ProviderError,
    RelayError,
    StorageFull,
    Unauthorized,
    UnsupportedMediaType,
)
from handlers.base.logs import get_logger
from handlers.domain.sniff import SNIFF_BYTES
from handlers.net.files import MediaFileResponse
from handlers.ports import BlobStore

__all__ = ["CLIENT_CLOSED", "Endpoint", "answering", "client_disconnected", "error_body", "error_response",
           "internal_error", "read_limited", "status_for", "stored_file"]

log = get_logger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]
Inspect = Callable[[bytes], None]
CLIENT_CLOSED = 499  # the client went away before its request was read (nginx's code; it never sees it)
_PLAYABLE = ("video/", "audio/", "image/")

_STATUS: list[tuple[type[RelayError], int]] = [
    (InvalidRequest, 400), (Unauthorized, 401), (BudgetExceeded, 402), (Forbidden, 403), (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413), (UnsupportedMediaType, 415), (ProviderError, 502), (StorageFull, 503),
]
# A 5xx of our own says what happened, never how: its exception text may name files or hosts.
_SERVER_MESSAGES = {"storage_full": "the relay's storage is full; try again once space is freed"}


def status_for(exc: RelayError) -> int:
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 500)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one error shape: ``{"error": {"code", "message", ...}}``."""
    return {"error": {"code": code, "message": message, **extra}}


def error_response(exc: RelayError, status: int | None = None) -> JSONResponse:
    """``exc`` as its JSON answer; a server-side error (5xx, not the provider's) keeps its text out."""
    status = status or status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status >= 500 and not isinstance(exc, ProviderError):
        log.error("api.server_error", code=exc.code, status=status, error=exc.message)
        body = error_body(exc.code, _SERVER_MESSAGES.get(exc.code, "internal error"))
    else:
        body = {"error": exc.as_dict()}
    return JSONResponse(body, status_code=status, headers=headers)


def internal_error() -> JSONResponse:
    """The answer for an error that is not the project's own: no text of it, ever."""
    return JSONResponse(error_body("internal_error", "internal error"), status_code=500)


def client_disconnected(request: HTTPConnection) -> Response:
    """A client that went away mid-body: noted, not an error of ours; the answer goes nowhere."""
    log.info("api.client_disconnected", method=request.scope.get("method"))
    return JSONResponse(error_body("client_disconnected", "the client closed the connection"),
                        status_code=CLIENT_CLOSED)


async def read_limited(request: Request, limit: int, *, inspect: Inspect | None = None) -> bytes:
    """The body, refusing (413) more than ``limit`` bytes without reading them all.

    ``inspect`` sees the body's first bytes (up to :data:`SNIFF_BYTES`) as soon as they arrive, before the rest
    is read, and may refuse the body by raising.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is over the {limit} byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit} byte limit")
        chunks.append(chunk)
        if inspect is not None and size >= SNIFF_BYTES:
            inspect(b"".join(chunks)[:SNIFF_BYTES])
            inspect = None
    if inspect is not None and size:
        inspect(b"".join(chunks))
    return b"".join(chunks)


def answering(endpoint: Endpoint) -> Endpoint:
    """The project's errors as JSON answers; anything else a bare 500 (logged, never shown)."""

    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except RelayError as exc:
            return error_response(exc)
        except ClientDisconnect:
            return client_disconnected(request)
        except Exception:
            log.exception("api.unhandled")
            return internal_error()

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
    path = blobs.local_path(key)
    if path is not None:
        return MediaFileResponse(path, media_type=media_type, headers=headers)
    chunks = await run_in_threadpool(blobs.read, key)
    return StreamingResponse(chunks, media_type=media_type,
                             headers={**headers, "Accept-Ranges": "none", "Content-Length": str(stored.size)})
