"""``GET /v1/jobs/{id}/outputs/{index}/{role}``: a stored picture of an output (bearer key or dashboard session).

``role`` is ``poster``, ``poster-thumbnail``, ``last-frame`` or ``last-frame-thumbnail``. The answer is a 307
to a presigned URL where the store makes them (S3), else the JPEG itself; a browser may keep either for a
couple of minutes. A job of another tenant, an output
it does not have, or a picture that was not made (the video was not read) answers 404 saying which.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from handlers.api.listing import visible_job
from handlers.api.responses import answering, stored_file
from handlers.app.relay import Relay
from handlers.base.errors import NotFound
from handlers.domain.tenancy import Principal
from handlers.media.frames import FRAME_ROLES

__all__ = ["FRAME_PATH", "PRESIGN_SECONDS", "frame_routes"]

FRAME_PATH = "/v1/jobs/{job_id}/outputs/{index:int}/{role}"
PRESIGN_SECONDS = 300
_CACHED = f"private, max-age={PRESIGN_SECONDS // 2}"  # a page that refreshes shows its pictures without asking again

Viewer = Callable[[HTTPConnection], Awaitable[Principal]]


def frame_routes(relay: Relay, viewer: Viewer) -> list[Route]:
    """The picture route; ``viewer`` names who asks (a bearer key or a session) or raises ``Unauthorized``."""
    async def picture(request: Request) -> Response:
        caller = await viewer(request)
        job = await run_in_threadpool(visible_job, relay, caller, request.path_params["job_id"])
        index: int = request.path_params["index"]
        role: str = request.path_params["role"]
        if role not in FRAME_ROLES:
            raise NotFound(f"no picture {role!r}: expected one of {', '.join(FRAME_ROLES)}")
        if index >= len(job.outputs):
            raise NotFound(f"job {job.id!r} has no output {index}")
        output = job.outputs[index]
        if role not in output.frames:
            raise NotFound(f"output {index} of job {job.id!r} has no {role} (its video was not read)")
        key = output.frame_key(role)
        url = await run_in_threadpool(relay.blobs.presign, key, PRESIGN_SECONDS)
        if url is not None:
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": _CACHED})
        answer = await stored_file(relay.blobs, key)
        answer.headers["Cache-Control"] = _CACHED
        return answer

    return [Route(FRAME_PATH, answering(picture), methods=["GET"])]
