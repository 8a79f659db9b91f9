"""``GET /metrics``: the relay's figures in the Prometheus text format, for callers with an API key."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers.api.auth import ApiKeys
from handlers.api.responses import answering
from handlers.app.metrics import CONTENT_TYPE
from handlers.app.relay import Relay

__all__ = ["metrics_routes"]


def metrics_routes(relay: Relay, api_keys: ApiKeys) -> list[Route]:
    async def metrics(request: Request) -> Response:
        await run_in_threadpool(api_keys.principal, request)
        body = await run_in_threadpool(relay.metrics.exposition)  # jobs and queues are read now
        return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})

    return [Route("/metrics", answering(metrics), methods=["GET"])]
