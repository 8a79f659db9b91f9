"""``POST /v1/estimates``: what a ``POST /v1/jobs`` body would cost, with nothing created.

A ``job://`` reference to one of the caller's tenant's jobs counts at the referenced video's real length, as
the submit counts it; a reference the submit would refuse is refused the same way."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.api.auth import ApiKeys
from handlers.api.responses import answering, read_limited
from handlers.app.relay import Relay
from handlers.domain.contract import REQUEST_BODY_MAX
from handlers.domain.jobrequest import parse_job_request
from handlers.usecases.estimate import Estimator, check_job_request, estimate_for_tenant, estimator_for

__all__ = ["estimate_routes"]


def estimate_routes(relay: Relay, api_keys: ApiKeys, *, estimator: Estimator | None = None) -> list[Route]:
    """The route; it prices and probes with ``estimator`` (default: :func:`estimator_for` the relay)."""
    pricing = estimator or estimator_for(relay)

    async def create(request: Request) -> Response:
        caller = await run_in_threadpool(api_keys.submitter, request)
        parsed = parse_job_request(await read_limited(request, REQUEST_BODY_MAX))
        body = check_job_request(relay.settings, parsed.body, parsed.metadata, parsed.cancel_after)
        result = await run_in_threadpool(estimate_for_tenant, relay, pricing, caller.tenant, body)
        return JSONResponse(result.as_dict())

    return [Route("/v1/estimates", answering(create), methods=["POST"])]
