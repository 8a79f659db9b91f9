"""The dashboard: a static page, its JSON summary and job details, the stored videos, and sessions.

Wire it with ``create_app(relay, api_keys, extra_routes=dashboard_routes(relay, api_keys))``.

| route | who | answer |
|---|---|---|
| ``GET /`` | anyone | the page (static; no data, no secrets) under a strict CSP |
| ``GET /dashboard/static/{name}`` | anyone | its script, stylesheet and icon |
| ``POST /session`` | anyone | ``api_key`` (form or JSON) valid: a session cookie and 303 to ``/``; else 401 |
| ``POST /session/logout`` | anyone | revokes the session, clears the cookie, 303 to ``/`` |
| ``GET /dashboard/summary?limit=&status=&tenant=`` | bearer or session | recent jobs, counts, queue depths, usage (1) |
| ``GET /dashboard/jobs/{id}`` | bearer or session | one job: its row (tenant, credits, queue place), request, … (2) |
| ``GET /v1/jobs/{id}/outputs/{index}`` | bearer or session | the stored file (Range-aware), or 307 to a presigned URL |
| ``GET /v1/jobs/{id}/outputs/{index}/{role}`` | bearer or session | its poster, last frame or their thumbnails (3) |

(1) A tenant's key sees its own jobs, counts and usage only; an admin's sees every tenant's jobs and counts,
or ``tenant``'s, with a tenant column, and every tenant's usage. A job of another tenant is answered as one
that does not exist. Queued jobs carry their place in the queue (``queue_position``).
(2) The row's fields, then request, metadata, outputs (with their sha256, media facts, checks and picture
routes), error and events. A row's output names its ``poster`` and ``poster_thumbnail`` routes when it has them.
(3) :mod:`handlers.api.frames`: a JPEG, or 307 to a presigned URL, as for the videos.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from handlers.api.auth import ApiKeys
from handlers.api.dashboard_view import COUNT_CAP, REFRESH_SECONDS, job_details, summarize
from handlers.api.frames import frame_routes
from handlers.api.listing import list_params, visible_job
from handlers.api.responses import answering, error_response, read_limited, stored_file
from handlers.api.session import Sessions, SessionTokens, same_origin, session_key
from handlers.app.relay import Relay
from handlers.base.errors import NotFound, Unauthorized
from handlers.base.jsonbody import parse_object
from handlers.base.logs import get_logger

__all__ = ["COUNT_CAP", "PRESIGN_SECONDS", "REFRESH_SECONDS", "Dashboard", "content_security_policy",
           "dashboard_routes", "refused_page", "summarize"]

log = get_logger(__name__)

STATIC = Path(__file__).with_name("static")
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
PRESIGN_SECONDS = 300
# Any valid key: asking the store to presign it tells whether videos will redirect away (S3 signs locally).
_PROBE_KEY = "dashboard/presign-probe"
_SIGN_IN_MAX_BYTES = 4096
# What the refused sign-in page changes in the static page: the form and its error are shown.
_REFUSED_EDITS = ((b'<main id="sign-in" class="narrow" hidden>', b'<main id="sign-in" class="narrow">'),
                  (b'<p id="sign-in-error" class="refusal" role="alert" hidden>',
                   b'<p id="sign-in-error" class="refusal" role="alert">'),
                  (b'<p id="status" role="status" aria-live="polite">Loading\xe2\x80\xa6</p>',
                   b'<p id="status" role="status" aria-live="polite">Sign-in refused.</p>'))


def refused_page(page: bytes) -> bytes:
    """The page with the sign-in form and its error shown (``ValueError`` if the page lacks either)."""
    for old, new in _REFUSED_EDITS:
        if page.count(old) != 1:
            raise ValueError(f"the dashboard page has no single {old.decode()!r} to show")
        page = page.replace(old, new)
    return page


def content_security_policy(*, presigned_media: bool) -> str:
    """The page's CSP: everything from us; videos and pictures also from https when they redirect to S3."""
    media = "'self' https:" if presigned_media else "'self'"
    return (f"default-src 'self'; media-src {media}; img-src {media}; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


def dashboard_routes(relay: Relay, api_keys: ApiKeys, *, key: bytes | None = None,
                     refresh_seconds: float = REFRESH_SECONDS) -> list[Route]:
    """The dashboard's routes; ``key`` signs sessions (default: see :func:`session_key`)."""
    keys = (*relay.settings.api_keys, *relay.settings.admin_keys)
    tokens = SessionTokens(key or session_key(keys), clock=relay.clock)
    return Dashboard(relay, Sessions(api_keys, tokens, relay.jobs), refresh_seconds).routes()


class Dashboard:
    """The endpoints, sharing the relay, the sessions and the page's headers."""

    def __init__(self, relay: Relay, sessions: Sessions, refresh_seconds: float) -> None:
        self.relay = relay
        self.sessions = sessions
        self.refresh_seconds = refresh_seconds
        self.page = (STATIC / "dashboard.html").read_bytes()
        self.refused = refused_page(self.page)
        self.assets = {name: (STATIC / name).read_bytes() for name in ASSETS}

    @cached_property
    def page_headers(self) -> dict[str, str]:
        """The page's headers, decided on first use (not at a Lambda's cold start): whether the store
        presigns decides where videos may play from."""
        presigned = self.relay.blobs.presign(_PROBE_KEY, PRESIGN_SECONDS) is not None
        return {"Content-Security-Policy": content_security_policy(presigned_media=presigned),
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-cache"}

    def routes(self) -> list[Route]:
        return [
            Route("/", answering(self.index), methods=["GET"]),
            Route("/dashboard/static/{name}", answering(self.asset), methods=["GET"]),
            Route("/session", answering(self.sign_in), methods=["POST"]),
            Route("/session/logout", answering(self.sign_out), methods=["POST"]),
            Route("/dashboard/summary", answering(self.summary), methods=["GET"]),
            Route("/dashboard/jobs/{job_id}", answering(self.details), methods=["GET"]),
            Route("/v1/jobs/{job_id}/outputs/{index:int}", answering(self.output), methods=["GET"]),
            *frame_routes(self.relay, self.sessions.viewer),
        ]

    async def index(self, _: Request) -> Response:
        return Response(self.page, media_type="text/html; charset=utf-8", headers=self.page_headers)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.assets:
            raise NotFound(f"no asset {name!r}")
        return Response(self.assets[name], media_type=ASSETS[name], headers=self.page_headers)

    async def sign_in(self, request: Request) -> Response:
        if not same_origin(request):
            return error_response(Unauthorized("cross-site sign-in refused", code="cross_site"), 403)
        presented = await _presented_key(request)
        response = RedirectResponse("/", status_code=303)
        if presented is None or not await self.sessions.open(response, request, presented):
            log.info("dashboard.sign_in_refused")
            return _refused(request, self.refused, self.page_headers)
        log.info("dashboard.session_opened")
        return response

    async def sign_out(self, request: Request) -> Response:
        if not same_origin(request):
            return error_response(Unauthorized("cross-site sign-out refused", code="cross_site"), 403)
        response = RedirectResponse("/", status_code=303)
        await self.sessions.close(response, request)
        return response

    async def summary(self, request: Request) -> Response:
        viewer = await self.sessions.viewer(request)
        listing = list_params(request, default_limit=25)
        tenant = listing.tenant if viewer.admin else viewer.tenant
        body = await run_in_threadpool(functools.partial(
            summarize, self.relay, listing.limit, self.refresh_seconds, status=listing.status, tenant=tenant,
            admin=viewer.admin))
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def details(self, request: Request) -> Response:
        viewer = await self.sessions.viewer(request)
        job = await run_in_threadpool(visible_job, self.relay, viewer, request.path_params["job_id"])
        body = await run_in_threadpool(job_details, self.relay, job)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def output(self, request: Request) -> Response:
        """Output ``index`` of the job: a 307 to a presigned URL, or the bytes themselves."""
        viewer = await self.sessions.viewer(request)
        job = await run_in_threadpool(visible_job, self.relay, viewer, request.path_params["job_id"])
        index: int = request.path_params["index"]
        if index >= len(job.outputs):
            raise NotFound(f"job {job.id!r} has no output {index}")
        key = job.outputs[index].key
        url = await run_in_threadpool(self.relay.blobs.presign, key, PRESIGN_SECONDS)
        if url is not None:
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
        return await stored_file(self.relay.blobs, key)


async def _presented_key(request: Request) -> str | None:
    raw = await read_limited(request, _SIGN_IN_MAX_BYTES)
    if request.headers.get("content-type", "").startswith("application/json"):
        value = parse_object(raw).get("api_key")
    else:
        value = next(iter(parse_qs(raw.decode("utf-8", "replace")).get("api_key", [])), None)
    return value if isinstance(value, str) and value.strip() else None


def _refused(request: Request, page: bytes, page_headers: Mapping[str, str]) -> Response:
    refusal = Unauthorized("a valid API key is required")
    wants_json = "json" in request.headers.get("content-type", "") + request.headers.get("accept", "")
    if wants_json:
        return error_response(refusal)
    return HTMLResponse(page, status_code=401, headers=dict(page_headers))
