"""``DELETE /v1/jobs/{job_id}``: cancel a job that has not ended.

It needs a submitter or admin key (a reader's is answered ``403``). A job of another tenant is
answered exactly as one that does not exist (``404``). A job that has ended, or whose outcome is
recorded, is answered ``409 job_ended`` with its ``status``. Otherwise the answer is the job, now
``cancelled``: see :mod:`handlers.usecases.cancel` (a running task is abandoned, and EvoLink may
still bill it).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.api.auth import ApiKeys
from handlers.api.listing import visible_job
from handlers.api.responses import answering
from handlers.app.relay import Relay
from handlers.base.errors import Forbidden
from handlers.domain.jobs import Job
from handlers.domain.tenancy import Principal
from handlers.usecases.cancel import CancelReason, cancel_job

__all__ = ["cancel_routes"]


def cancel_routes(relay: Relay, api_keys: ApiKeys) -> list[Route]:
    """The cancel route on ``relay``."""

    def cancel_visible(caller: Principal, job_id: str) -> Job:
        return cancel_job(relay, visible_job(relay, caller, job_id), CancelReason.CALLER)

    async def cancel(request: Request) -> Response:
        caller = await run_in_threadpool(api_keys.principal, request)
        if not caller.role.submits:
            raise Forbidden("this key may only read jobs; cancelling one needs a submitter or admin key")
        job = await run_in_threadpool(cancel_visible, caller, request.path_params["job_id"])
        return JSONResponse(job.public())

    return [Route("/v1/jobs/{job_id}", answering(cancel), methods=["DELETE"])]
