"""``POST /v1/uploads`` (bearer) and ``GET /v1/uploads/{name}`` (signed, short-lived URL)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.api.auth import ApiKeys
from handlers.api.responses import answering, read_limited, stored_file
from handlers.app.relay import Relay
from handlers.domain.contract import VIDEO
from handlers.usecases.uploads import check_bytes, check_upload_url, limits_for, store_upload

__all__ = ["upload_routes"]


def upload_routes(relay: Relay, api_keys: ApiKeys) -> list[Route]:
    ttl = int(relay.settings.upload_url_ttl)

    async def create(request: Request) -> Response:
        caller = await run_in_threadpool(api_keys.submitter, request)
        content_type = request.headers.get("content-type", "")
        limits_for(content_type)  # refuse an unsupported type before reading the body
        data = await read_limited(request, VIDEO.max_bytes,
                                  inspect=lambda head: check_bytes(content_type, head))  # and wrong bytes at once
        upload = await run_in_threadpool(store_upload, relay, data, content_type, ttl=ttl, tenant=caller.tenant)
        return JSONResponse(upload.as_dict(), status_code=201)

    async def fetch(request: Request) -> Response:
        key = check_upload_url(relay, request.path_params["name"], request.query_params.get("expires", ""),
                               request.query_params.get("sig", ""))
        return await stored_file(relay.blobs, key)

    return [Route("/v1/uploads", answering(create), methods=["POST"]),
            Route("/v1/uploads/{name:path}", answering(fetch), methods=["GET", "HEAD"])]
