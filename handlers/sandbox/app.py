"""The sandbox as an ASGI app: EvoLink's routes, auth, error bodies and HTTP codes."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from handlers.base.errors import InvalidRequest, NotFound, ProviderError
from handlers.domain.contract import REQUEST_BODY_MAX
from handlers.net.files import MediaFileResponse
from handlers.net.refusals import refusal_message
from handlers.provider.evolink.task import is_task_id
from handlers.provider.validation import parse_request_bytes
from handlers.sandbox.engine import SandboxEngine

__all__ = ["create_sandbox_app", "error_response"]

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota",
          403: "invalid_request_error", 404: "invalid_request_error", 405: "invalid_request_error",
          413: "invalid_request_error", 429: "evo_api_error", 500: "api_error", 503: "api_error"}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def error_response(status: int, code: str, message: str, *, param: str | None = None,
                   headers: dict[str, str] | None = None, kind: str | None = None) -> JSONResponse:
    """EvoLink's error body; ``kind`` is its ``type`` when the status's usual one does not fit."""
    error: dict[str, Any] = {"code": code, "message": message, "type": kind or _TYPES.get(status, "api_error")}
    if param is not None:
        error["param"] = param
    return JSONResponse({"error": error}, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """No route, or a wrong method, in EvoLink's JSON error shape (clients parse every error body)."""
    assert isinstance(exc, HTTPException)
    message = refusal_message(request, exc, no_route="Route {method} {path} not found",
                              bad_method="Method {method} not allowed; allowed: {allowed}")
    return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "invalid_request"), message,
                          headers=dict(exc.headers or {}))


def _bearer(request: Request) -> str | None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None


def _authorize(engine: SandboxEngine, request: Request) -> str | None:
    key = _bearer(request)
    expected = engine.settings.api_key
    if key is None or (expected is not None and not hmac.compare_digest(key, expected)):
        return None
    return key


def _provider_error(exc: ProviderError) -> JSONResponse:
    """A refused create as EvoLink answers it: a 429 with ``Retry-After`` (whole seconds) and its create type."""
    headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))} if exc.retry_after else None
    kind = "rate_limit_error" if exc.status == 429 else None  # the create call's 429 type (GET's differs)
    return error_response(exc.status or 500, exc.code, exc.message, headers=headers, kind=kind)


def _callback_allowed(url: str) -> bool:
    """https anywhere; plain http only to loopback, for local runs."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return parts.scheme == "http" and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_sandbox_app(engine: SandboxEngine) -> Starlette:
    unauthorized = ("unauthorized", "Authentication required")

    async def create(request: Request) -> Response:
        key = _authorize(engine, request)
        if key is None:
            return error_response(401, *unauthorized)
        raw = await request.body()
        if len(raw) > REQUEST_BODY_MAX:
            return error_response(413, "payload_too_large", "Request body exceeds 64 MB")
        try:
            body = parse_request_bytes(raw, allow_http=True)
            engine.maybe_refuse_create()
        except InvalidRequest as exc:
            first = exc.violations[0]
            return error_response(400, "invalid_request", exc.message, param=first.field)
        except ProviderError as exc:
            return _provider_error(exc)
        callback = body.get("callback_url")
        if callback and not _callback_allowed(str(callback)):
            return error_response(400, "invalid_request", "callback_url must be HTTPS "
                                  "(plain http only to loopback in the sandbox)",
                                  param="callback_url")
        try:
            task = await run_in_threadpool(engine.create, body, owner=key, base_url=str(request.base_url))
        except ProviderError as exc:  # past the plan's concurrency or the account's credits
            return _provider_error(exc)
        return JSONResponse(task)

    async def get_task(request: Request) -> Response:
        key = _authorize(engine, request)
        if key is None:
            return error_response(401, *unauthorized)
        task_id = request.path_params["task_id"]
        if not is_task_id(task_id):
            return error_response(400, "invalid_task_id",
                                  "Invalid task ID format, must start with 'task-unified-'",
                                  param="task_id")
        try:
            return JSONResponse(engine.get(task_id, owner=key))
        except NotFound:
            return error_response(404, "task_not_found", "The requested task could not be found")
        except ProviderError as exc:
            return error_response(exc.status or 403, exc.code, exc.message)

    async def download(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        expires, sig = request.query_params.get("expires", "0"), request.query_params.get("sig", "")
        try:
            path = engine.media_for(task_id, expires, sig)
        except NotFound:
            return PlainTextResponse("NoSuchKey", status_code=404)
        except (ProviderError, ValueError) as exc:
            return PlainTextResponse(f"AccessDenied: {exc}", status_code=403)
        if engine.settings.download_delay:
            await asyncio.sleep(engine.settings.download_delay)
        return MediaFileResponse(path, media_type="video/mp4")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "sandbox": True})

    return Starlette(routes=[
        Route("/v1/videos/generations", create, methods=["POST"]),
        Route("/v1/tasks/{task_id}", get_task, methods=["GET"]),
        Route("/files/{task_id}/video.mp4", download, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET"]),
    ], exception_handlers={HTTPException: _http_error})
