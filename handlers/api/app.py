"""Routes: thin handlers that parse, call a use case and render.

Every answer goes through :class:`~handlers.api.middleware.RequestLog` (``X-Request-Id``, the
access log), and every error, the router's 404 and 405 included, has the one JSON error body.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from handlers.api.auth import ApiKeys
from handlers.api.callback_batch import CallbackBatch
from handlers.api.cancel import cancel_routes
from handlers.api.estimates import estimate_routes
from handlers.api.jobfiles import job_file_routes
from handlers.api.keys import key_routes
from handlers.api.listing import list_params, shown, visible_job
from handlers.api.metrics import metrics_routes
from handlers.api.middleware import Observer, RequestLog
from handlers.api.openapi import openapi_document
from handlers.api.reference import reference_routes
from handlers.api.responses import answering, client_disconnected, error_body, error_response, read_limited
from handlers.api.storyboards import storyboard_routes
from handlers.api.uploads import upload_routes
from handlers.app.relay import Relay
from handlers.base.errors import InvalidRequest, PayloadTooLarge, RelayError, Unauthorized
from handlers.base.logs import get_logger
from handlers.domain.contract import REQUEST_BODY_MAX
from handlers.domain.jobrequest import parse_job_request
from handlers.domain.jobs import JobStatus
from handlers.net.refusals import refusal_message
from handlers.usecases.budget import usage_report
from handlers.usecases.callbacks import check_callback
from handlers.usecases.submit import submit_job

__all__ = ["REPLAYED_HEADER", "create_app"]

log = get_logger(__name__)
REPLAYED_HEADER = "Idempotent-Replayed"
_ACCEPTED = b'{"accepted":true}'  # JSONResponse({"accepted": True}), rendered once
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route, wrong method, a missing static file) in the error shape."""
    assert isinstance(exc, HTTPException)
    message = refusal_message(request, exc, no_route="no route {method} {path}",
                              bad_method="{method} is not allowed here; allowed: {allowed}")
    body = error_body(_HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}"), message)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _relay_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RelayError)
    return error_response(exc)


async def _disconnected(request: Request, _: Exception) -> Response:
    return client_disconnected(request)


def _refusal(exc: RelayError) -> str:
    """The reason class of a refused callback, for its log line."""
    if isinstance(exc, PayloadTooLarge):
        return "too_large"
    if isinstance(exc, InvalidRequest) and exc.violations:
        return exc.violations[0].code
    return "bad_token" if isinstance(exc, Unauthorized) else exc.code


def create_app(relay: Relay, api_keys: ApiKeys, *, extra_routes: list[Route] | None = None,
               on_request: Observer | None = None) -> Starlette:
    """The relay's ASGI app; ``on_request(method, route, status, seconds)`` sees every request.

    By default that is the relay's own metrics (``GET /metrics``); pass another observer to watch
    the requests instead.
    """
    callbacks = CallbackBatch(relay, inline=relay.settings.backend == "local")

    async def create_job(request: Request) -> Response:
        caller = await run_in_threadpool(api_keys.submitter, request)
        parsed = parse_job_request(await read_limited(request, REQUEST_BODY_MAX))
        job, replayed = await run_in_threadpool(submit_job, relay, parsed.body, metadata=parsed.metadata,
                                                tenant=caller.tenant, cancel_after=parsed.cancel_after,
                                                idempotency_key=request.headers.get("idempotency-key"))
        status = 422 if job.status is JobStatus.REJECTED else 202
        body = (await run_in_threadpool(shown, relay, [job]))[0] if job.status is JobStatus.QUEUED else job.public()
        return JSONResponse(body, status_code=status, headers={REPLAYED_HEADER: "true"} if replayed else None)

    async def get_job(request: Request) -> Response:
        caller = await run_in_threadpool(api_keys.principal, request)
        job = await run_in_threadpool(visible_job, relay, caller, request.path_params["job_id"])
        return JSONResponse((await run_in_threadpool(shown, relay, [job]))[0])

    async def list_jobs(request: Request) -> Response:
        caller = await run_in_threadpool(api_keys.principal, request)
        listing = list_params(request)
        jobs, next_cursor = await run_in_threadpool(
            relay.jobs.page, status=listing.status, limit=listing.limit, cursor=listing.cursor,
            tenant=listing.tenant if caller.admin else caller.tenant)
        return JSONResponse({"jobs": await run_in_threadpool(shown, relay, jobs), "next_cursor": next_cursor})

    async def usage(request: Request) -> Response:
        caller = await run_in_threadpool(api_keys.principal, request)
        tenants = None if caller.admin else [caller.tenant]
        lines = await run_in_threadpool(usage_report, relay.ledger, relay.settings.budgets, tenants, relay.clock())
        return JSONResponse({"usage": [line.as_dict() for line in lines]}, headers={"Cache-Control": "no-store"})

    async def callback(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            raw = await read_limited(request, relay.settings.callback_max_bytes)
            message = check_callback(relay, job_id, request.query_params.get("token"), raw)
        except (PayloadTooLarge, Unauthorized, InvalidRequest) as exc:
            log.info("callback.refused", job_id=job_id, reason=_refusal(exc))
            raise
        if await callbacks.accept(message) is None:
            log.info("callback.refused", job_id=job_id, reason="unknown_job")
            raise Unauthorized("unknown job or invalid token")
        return Response(_ACCEPTED, status_code=202, media_type="application/json")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "backend": relay.settings.backend,
                             "provider": "sandbox" if relay.settings.uses_sandbox else "evolink"})

    async def openapi(_: Request) -> Response:
        return JSONResponse(openapi_document())

    routes: list[BaseRoute] = [
        Route("/v1/jobs", answering(create_job), methods=["POST"]),
        Route("/v1/jobs", answering(list_jobs), methods=["GET"]),
        Route("/v1/jobs/{job_id}", answering(get_job), methods=["GET"]),
        *cancel_routes(relay, api_keys),
        Route("/v1/usage", answering(usage), methods=["GET"]),
        Route("/v1/callbacks/evolink/{job_id}", answering(callback), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *upload_routes(relay, api_keys),
        *job_file_routes(relay),
        *storyboard_routes(relay, api_keys),
        *key_routes(relay.keys, api_keys, relay.clock),
        *estimate_routes(relay, api_keys),
        *reference_routes(),
        *metrics_routes(relay, api_keys),
        *(extra_routes or []),
    ]
    handlers = {HTTPException: _http_error, RelayError: _relay_error, ClientDisconnect: _disconnected}
    observer = on_request or relay.metrics.observe_request
    return Starlette(routes=routes, middleware=[Middleware(RequestLog, on_request=observer)],
                     exception_handlers=handlers)
