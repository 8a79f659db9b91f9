"""Storyboard routes: create (every shot at once), read, rerun one shot, and estimate.

| route | who | what |
|---|---|---|
| ``POST /v1/storyboards`` | submitter | create it (``Idempotency-Key`` honoured): 202 and the storyboard |
| ``GET /v1/storyboards/{id}`` | the tenant, or an admin | its newest revision: each shot's job, the joined output |
| ``POST /v1/storyboards/{id}/shots/{shot}/rerun`` | the tenant, or an admin | the next revision: 202 |
| ``POST /v1/storyboards/estimates`` | submitter | what its shots would cost the caller's tenant, nothing created |
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.api.auth import ApiKeys
from handlers.api.responses import answering, read_limited
from handlers.app.relay import Relay
from handlers.base.jsonbody import parse_object
from handlers.domain.contract import REQUEST_BODY_MAX
from handlers.domain.storyboards import parse_storyboard
from handlers.usecases.storyboards import create_storyboard, estimate_storyboard, rerun_shot, show_storyboard

__all__ = ["storyboard_routes"]


def storyboard_routes(relay: Relay, api_keys: ApiKeys) -> list[Route]:
    async def create(request: Request) -> Response:
        caller = await run_in_threadpool(api_keys.submitter, request)
        body = parse_object(await read_limited(request, REQUEST_BODY_MAX), what="the body", strict=True)
        view = await run_in_threadpool(create_storyboard, relay, body, tenant=caller.tenant,
                                       idempotency_key=request.headers.get("idempotency-key"))
        return JSONResponse(view, status_code=202)

    async def read(request: Request) -> Response:
        caller = await run_in_threadpool(api_keys.principal, request)
        view = await run_in_threadpool(show_storyboard, relay, request.path_params["storyboard_id"],
                                       tenant=None if caller.admin else caller.tenant)
        return JSONResponse(view)

    async def rerun(request: Request) -> Response:
        caller = await run_in_threadpool(api_keys.submitter, request)
        view = await run_in_threadpool(rerun_shot, relay, request.path_params["storyboard_id"],
                                       request.path_params["shot"], tenant=None if caller.admin else caller.tenant)
        return JSONResponse(view, status_code=202)

    async def estimate(request: Request) -> Response:
        caller = await run_in_threadpool(api_keys.submitter, request)
        body = parse_object(await read_limited(request, REQUEST_BODY_MAX), what="the body", strict=True)
        cost = await run_in_threadpool(estimate_storyboard, relay, parse_storyboard(body), tenant=caller.tenant)
        return JSONResponse(cost.as_dict())

    return [Route("/v1/storyboards", answering(create), methods=["POST"]),
            Route("/v1/storyboards/estimates", answering(estimate), methods=["POST"]),
            Route("/v1/storyboards/{storyboard_id}", answering(read), methods=["GET"]),
            Route("/v1/storyboards/{storyboard_id}/shots/{shot}/rerun", answering(rerun), methods=["POST"])]
