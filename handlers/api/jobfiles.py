"""``GET /v1/job-files/{key}``: a job's stored file behind a signed, short-lived URL.

What EvoLink fetches for a ``job://`` reference when the store makes no presigned URLs of its own (the local
folder): the key and expiry are signed with the callback keys under the ``job-file-url`` purpose
(:func:`handlers.usecases.references.job_file_url`). A forged or expired link answers 404, as a missing file.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers.api.responses import answering, stored_file
from handlers.app.relay import Relay
from handlers.usecases.references import check_job_file_url

__all__ = ["job_file_routes"]


def job_file_routes(relay: Relay) -> list[Route]:
    async def fetch(request: Request) -> Response:
        key = check_job_file_url(relay, request.path_params["name"], request.query_params.get("expires", ""),
                                 request.query_params.get("sig", ""))
        return await stored_file(relay.blobs, key)

    return [Route("/v1/job-files/{name:path}", answering(fetch), methods=["GET", "HEAD"])]
