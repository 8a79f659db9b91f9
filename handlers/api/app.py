"""Routes: thin handlers that parse, call a use case and render."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.api.auth import ApiKeys
from handlers.api.callback_batch import CallbackBatch
from handlers.api.openapi import openapi_document
from handlers.api.responses import answering, read_limited
from handlers.api.uploads import upload_routes
from handlers.contract import REQUEST_BODY_MAX
from handlers.errors import InvalidRequest, Unauthorized, Violation
from handlers.jobs import JobStatus
from handlers.jsonbody import parse_object
from handlers.logs import get_logger
from handlers.relay import Relay
from handlers.usecases import submit
from handlers.usecases.callbacks import check_callback

__all__ = ["create_app"]

log = get_logger(__name__)
_ACCEPTED = b'{"accepted":true}'  # JSONResponse({"accepted": True}), rendered once


def _list_params(request: Request) -> tuple[JobStatus | None, int, str | None]:
    problems: list[Violation] = []
    raw_status, raw_limit = request.query_params.get("status"), request.query_params.get("limit", "50")
    status = None
    if raw_status:
        try:
            status = JobStatus(raw_status)
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            problems.append(Violation("status", "invalid_choice", f"status must be one of {allowed}"))
    limit = int(raw_limit) if raw_limit.isdigit() else 0
    if not 1 <= limit <= 100:
        problems.append(Violation("limit", "out_of_range", "limit must be an integer from 1 to 100"))
    if problems:
        raise InvalidRequest(problems)
    return status, limit, request.query_params.get("cursor") or None


def create_app(relay: Relay, api_keys: ApiKeys, *, extra_routes: list[Route] | None = None) -> Starlette:
    callbacks = CallbackBatch(relay, inline=relay.settings.backend == "local")

    async def create_job(request: Request) -> Response:
        scope = api_keys.caller(request)
        body = parse_object(await read_limited(request, REQUEST_BODY_MAX))
        metadata = body.pop("metadata", {})
        job = await run_in_threadpool(submit, relay, body, metadata=metadata, scope=scope,
                                      idempotency_key=request.headers.get("idempotency-key"))
        status = 422 if job.status is JobStatus.REJECTED else 202
        return JSONResponse(job.public(), status_code=status)

    async def get_job(request: Request) -> Response:
        api_keys.caller(request)
        job = await run_in_threadpool(relay.jobs.get, request.path_params["job_id"])
        return JSONResponse(job.public())

    async def list_jobs(request: Request) -> Response:
        api_keys.caller(request)
        status, limit, cursor = _list_params(request)
        jobs, next_cursor = await run_in_threadpool(relay.jobs.page, status=status, limit=limit,
                                                    cursor=cursor)
        return JSONResponse({"jobs": [j.public() for j in jobs], "next_cursor": next_cursor})

    async def callback(request: Request) -> Response:
        raw = await read_limited(request, relay.settings.callback_max_bytes)
        message = check_callback(relay, request.path_params["job_id"], request.query_params.get("token"), raw)
        if await callbacks.accept(message) is None:
            raise Unauthorized("unknown job or invalid token")
        return Response(_ACCEPTED, status_code=202, media_type="application/json")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "backend": relay.settings.backend,
                             "provider": "sandbox" if relay.settings.uses_sandbox else "evolink"})

    async def openapi(_: Request) -> Response:
        return JSONResponse(openapi_document())

    routes = [
        Route("/v1/jobs", answering(create_job), methods=["POST"]),
        Route("/v1/jobs", answering(list_jobs), methods=["GET"]),
        Route("/v1/jobs/{job_id}", answering(get_job), methods=["GET"]),
        Route("/v1/callbacks/evolink/{job_id}", answering(callback), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *upload_routes(relay, api_keys),
        *(extra_routes or []),
    ]
    return Starlette(routes=routes)
