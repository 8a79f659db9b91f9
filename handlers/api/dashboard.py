"""The dashboard: a static page, its JSON summary, the stored videos, and session sign-in.

Wire it with ``create_app(relay, api_keys, extra_routes=dashboard_routes(relay, api_keys))``.

| route | who | answer |
|---|---|---|
| ``GET /`` | anyone | the page (static; no data, no secrets) under a strict CSP |
| ``GET /dashboard/static/{name}`` | anyone | its script, stylesheet and icon |
| ``POST /session`` | anyone | ``api_key`` (form or JSON) valid: a session cookie and 303 to ``/``; else 401 |
| ``POST /session/logout`` | anyone | clears the cookie, 303 to ``/`` |
| ``GET /dashboard/summary?limit=`` | bearer or session | recent jobs, counts by status, queue depths |
| ``GET /v1/jobs/{id}/outputs/{index}`` | bearer or session | the stored file (Range-aware), or 307 to a presigned URL |
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from handlers.api.auth import ApiKeys
from handlers.api.responses import answering, error_response, read_limited, stored_file
from handlers.api.session import Sessions, SessionTokens, same_origin, session_key
from handlers.errors import InvalidRequest, NotFound, Unauthorized, Violation
from handlers.jobs import Job, JobStatus
from handlers.jsonbody import parse_object
from handlers.logs import get_logger
from handlers.relay import Relay

__all__ = ["COUNT_CAP", "PRESIGN_SECONDS", "REFRESH_SECONDS", "Dashboard", "content_security_policy",
           "dashboard_routes", "summarize"]

log = get_logger(__name__)

STATIC = Path(__file__).with_name("static")
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
COUNT_CAP = 100
PRESIGN_SECONDS = 300
REFRESH_SECONDS = 5.0
_SIGN_IN_MAX_BYTES = 4096
_JOB_FIELDS = ("id", "status", "outcome", "model", "progress", "created_at", "updated_at", "submitted_at",
               "finished_at", "estimated_time", "error")
_REFUSED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in refused · seedance-relay</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/dashboard/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/dashboard/static/dashboard.css"></head>
<body><main class="narrow"><h1>Sign-in refused</h1><p>That key was not accepted.</p>
<p><a href="/">Try again</a></p></main></body></html>
"""


def content_security_policy(*, presigned_media: bool) -> str:
    """The page's CSP: everything from us; media also from https when videos redirect to S3."""
    media = "'self' https:" if presigned_media else "'self'"
    return (f"default-src 'self'; media-src {media}; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


def dashboard_routes(relay: Relay, api_keys: ApiKeys, *, key: bytes | None = None,
                     refresh_seconds: float = REFRESH_SECONDS) -> list[Route]:
    """The dashboard's routes; ``key`` signs sessions (default: see :func:`session_key`)."""
    tokens = SessionTokens(key or session_key(relay.settings.api_keys), clock=relay.clock)
    return Dashboard(relay, Sessions(api_keys, tokens), refresh_seconds).routes()


class Dashboard:
    """The endpoints, sharing the relay, the sessions and the page's headers."""

    def __init__(self, relay: Relay, sessions: Sessions, refresh_seconds: float) -> None:
        self.relay = relay
        self.sessions = sessions
        self.refresh_seconds = refresh_seconds
        self.presign = getattr(relay.blobs, "presign", None)
        self.page_headers = {"Content-Security-Policy": content_security_policy(presigned_media=callable(self.presign)),
                             "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                             "Cache-Control": "no-cache"}
        self.page = (STATIC / "dashboard.html").read_bytes()
        self.assets = {name: (STATIC / name).read_bytes() for name in ASSETS}

    def routes(self) -> list[Route]:
        return [
            Route("/", answering(self.index), methods=["GET"]),
            Route("/dashboard/static/{name}", answering(self.asset), methods=["GET"]),
            Route("/session", answering(self.sign_in), methods=["POST"]),
            Route("/session/logout", answering(self.sign_out), methods=["POST"]),
            Route("/dashboard/summary", answering(self.summary), methods=["GET"]),
            Route("/v1/jobs/{job_id}/outputs/{index:int}", answering(self.output), methods=["GET"]),
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
        if presented is None or not self.sessions.key_is_valid(presented):
            log.info("dashboard.sign_in_refused")
            return _refused(request, self.page_headers)
        response = RedirectResponse("/", status_code=303)
        self.sessions.open(response, request)
        log.info("dashboard.session_opened")
        return response

    async def sign_out(self, request: Request) -> Response:
        if not same_origin(request):
            return error_response(Unauthorized("cross-site sign-out refused", code="cross_site"), 403)
        response = RedirectResponse("/", status_code=303)
        self.sessions.close(response, request)
        return response

    async def summary(self, request: Request) -> Response:
        self.sessions.viewer(request)
        body = await run_in_threadpool(summarize, self.relay, _limit(request), self.refresh_seconds)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def output(self, request: Request) -> Response:
        """Output ``index`` of the job: a 307 to a presigned URL, or the bytes themselves."""
        self.sessions.viewer(request)
        job = await run_in_threadpool(self.relay.jobs.get, request.path_params["job_id"])
        index: int = request.path_params["index"]
        if index >= len(job.outputs):
            raise NotFound(f"job {job.id!r} has no output {index}")
        key = job.outputs[index].key
        if callable(self.presign):
            url = await run_in_threadpool(self.presign, key, PRESIGN_SECONDS)
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
        return await stored_file(self.relay.blobs, key)


def summarize(relay: Relay, limit: int, refresh_seconds: float = REFRESH_SECONDS) -> dict[str, Any]:
    """What the page shows: the newest ``limit`` jobs, counts by status, every queue's depth."""
    jobs, _ = relay.jobs.page(limit=limit)
    queues = [{"name": "ingest", "kind": "ingest", **relay.ingest_queue.depth()}]
    queues += [{"name": name, "kind": "subscriber", **relay.bus.subscriber(name).depth()}
               for name, _ in relay.settings.subscribers]
    return {"server_time": relay.clock(), "refresh_seconds": refresh_seconds,
            "jobs": [_job_row(job) for job in jobs], "counts": _counts(relay), "queues": queues,
            "dead_letters": sum(q["dead"] for q in queues)}


def _job_row(job: Job) -> dict[str, Any]:
    public = job.public()
    row = {name: public[name] for name in _JOB_FIELDS}
    duration = job.request.get("duration")
    row["duration"] = duration if isinstance(duration, int) else None
    row["outputs"] = [{"index": i, "url": f"/v1/jobs/{quote(job.id, safe='')}/outputs/{i}",
                       "content_type": o.content_type, "size": o.size} for i, o in enumerate(job.outputs)]
    return row


def _counts(relay: Relay) -> dict[str, dict[str, Any]]:
    """Jobs per status, counted up to :data:`COUNT_CAP` (``more`` says there are others)."""
    counts = {}
    for status in JobStatus:
        jobs, cursor = relay.jobs.page(status=status, limit=COUNT_CAP)
        counts[status.value] = {"count": len(jobs), "more": cursor is not None}
    return counts


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "25")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise InvalidRequest([Violation("limit", "out_of_range", "limit must be an integer from 1 to 100")])
    return int(raw)


async def _presented_key(request: Request) -> str | None:
    raw = await read_limited(request, _SIGN_IN_MAX_BYTES)
    if request.headers.get("content-type", "").startswith("application/json"):
        value = parse_object(raw).get("api_key")
    else:
        value = next(iter(parse_qs(raw.decode("utf-8", "replace")).get("api_key", [])), None)
    return value if isinstance(value, str) and value.strip() else None


def _refused(request: Request, page_headers: Mapping[str, str]) -> Response:
    refusal = Unauthorized("a valid API key is required")
    wants_json = "json" in request.headers.get("content-type", "") + request.headers.get("accept", "")
    if wants_json:
        return error_response(refusal)
    return HTMLResponse(_REFUSED_PAGE, status_code=401, headers=dict(page_headers))
