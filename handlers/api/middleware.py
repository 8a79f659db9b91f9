"""Request ids and the access log, as one pure ASGI middleware (cheap enough for the callback route).

Every HTTP response carries ``X-Request-Id``: the client's own when it is well formed (1-128
characters of ``A-Za-z0-9._-``), else a new one. The id is bound into structlog's context
variables for the request, so every log line written while serving it carries ``request_id``.
Once the response is sent, one ``api.request`` line records the method, the route template
(``/v1/jobs/{job_id}``, never the path itself, which may hold ids or tokens), the status, the
duration, the id and the caller's scope (the API-key fingerprint :class:`ApiKeys` stores). No
query string, token or key ever reaches it. ``on_request(method, route, status, seconds)`` is
called once per request for whoever counts them.

An exception that escapes the app is logged with the id and answered with the generic 500 body.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, reset_contextvars

from handlers.api.auth import CALLER, TENANT
from handlers.api.responses import internal_error
from handlers.base.logs import get_logger

__all__ = ["CALLER", "REQUEST_ID_HEADER", "UNMATCHED", "Observer", "RequestLog", "request_id", "route_template"]

log = get_logger("handlers.api.access")
Observer = Callable[[str, str, int, float], None]
REQUEST_ID_HEADER = "x-request-id"
UNMATCHED = "unmatched"  # the route of a request no route matched (its path is not logged)
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_HEADER = REQUEST_ID_HEADER.encode()


def request_id(scope: Scope) -> str:
    """The client's ``X-Request-Id`` when well formed, else a new random one."""
    value: bytes
    for name, value in scope.get("headers", ()):
        if name == _HEADER:
            if _REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return secrets.token_hex(12)


def route_template(scope: Scope) -> str:
    """The template of the route that served ``scope`` (``/v1/jobs/{job_id}``), or ``unmatched``."""
    route = scope.get("route")
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    if isinstance(route, Route):
        path: str = route.path
        return path
    return UNMATCHED


class RequestLog:
    """``X-Request-Id``, context-bound logging and one access line per HTTP request."""

    def __init__(self, app: ASGIApp, *, on_request: Observer | None = None) -> None:
        self.app = app
        self.on_request = on_request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        header = (_HEADER, rid.encode("ascii"))
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        tokens = bind_contextvars(request_id=rid)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("api.unhandled")
            if started:
                raise
            await internal_error()(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            self._record(scope, status, seconds, rid)
            reset_contextvars(**tokens)

    def _record(self, scope: Scope, status: int, seconds: float, rid: str) -> None:
        method: str = scope["method"]
        route = route_template(scope)
        state: dict[str, Any] = scope.get("state") or {}
        log.info("api.request", method=method, route=route, status=status, duration_ms=round(seconds * 1000, 3),
                 request_id=rid, caller=state.get(CALLER), tenant=state.get(TENANT))
        if self.on_request is not None:
            try:
                self.on_request(method, route, status, seconds)
            except Exception:  # counting must never break serving
                log.exception("api.observer_failed")
