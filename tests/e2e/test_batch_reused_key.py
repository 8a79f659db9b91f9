"""``submit --batch`` run again over a line with a local file, against a running relay and the sandbox over real
sockets: the file's new upload URL makes the relay answer ``409 idempotency_key_reused``. The job that answer
names is read at once, with no listing of the caller's jobs; a relay whose 409 names no job (an older one) has the
job found by its key among the caller's jobs instead."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from starlette.requests import Request
from starlette.responses import Response

from handlers.net.server import BackgroundServer
from handlers.sandbox.media import render_image
from tests.support.cli import relay_cli
from tests.support.logs import rendered_logs
from tests.support.tenants import REQUEST, TenantStack, tenant_stack

pytestmark = pytest.mark.e2e
_NOT_FORWARDED = {"host", "content-length", "connection", "transfer-encoding"}


class OlderRelay:
    """An ASGI app standing for a relay whose ``409 idempotency_key_reused`` names no job: it forwards every
    request to ``upstream`` and drops ``job_id`` from the error of a 409."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        request = Request(scope, receive)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        async with httpx.AsyncClient(base_url=self.upstream, timeout=60) as client:
            answer = await client.request(request.method, request.url.path, params=request.url.query,
                                          content=await request.body(), headers=headers)
        content = answer.content
        if answer.status_code == 409:
            body = answer.json()
            body["error"].pop("job_id", None)
            content = json.dumps(body).encode()
        response = Response(content, status_code=answer.status_code, media_type=answer.headers.get("content-type"))
        await response(scope, receive, send)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[TenantStack]:
    with tenant_stack("local", tmp_path / "stack") as running:
        yield running


def batch_with_a_local_file(tmp_path: Path) -> Path:
    image = tmp_path / "first.png"
    image.write_bytes(render_image(width=640, height=480))
    path = tmp_path / "shots.jsonl"
    path.write_text(json.dumps({**REQUEST, "prompt": "kite 1"}) + "\n"
                    + json.dumps({**REQUEST, "image_urls": [str(image)]}) + "\n")
    return path


def next_second() -> None:
    """Sleep into the next whole second: an upload URL expires at a whole second, so one made then differs."""
    time.sleep(1 - time.time() % 1 + 0.01)


def job_ids(result: Result) -> dict[int, str]:
    assert result.exit_code == 0, result.output
    *lines, _ = [json.loads(text) for text in result.stdout.splitlines()]
    return {line["line"]: line["job_id"] for line in lines}


def calls(logs: str) -> list[tuple[str, str, int]]:
    """``(method, route, status)`` of each request the relay answered."""
    answers = [json.loads(line) for line in logs.splitlines() if '"api.request"' in line]
    return [(a["method"], a["route"], a["status"]) for a in answers if a["route"].startswith("/v1/jobs")]


def test_the_job_a_409_names_is_read_without_listing_the_callers_jobs(stack: TenantStack, tmp_path: Path) -> None:
    path = batch_with_a_local_file(tmp_path)
    first = job_ids(relay_cli(stack.url, stack.key_of("acme"), "submit", "--batch", str(path), "--json"))
    next_second()
    with rendered_logs("info") as logs:
        second = job_ids(relay_cli(stack.url, stack.key_of("acme"), "submit", "--batch", str(path), "--json"))
    assert second == first and len(stack.sandbox_tasks()) == 2
    seen = calls(logs.getvalue())
    assert sorted(seen) == [("GET", "/v1/jobs/{job_id}", 200), ("POST", "/v1/jobs", 202), ("POST", "/v1/jobs", 409)]


def test_a_relay_whose_409_names_no_job_has_the_job_found_by_its_key(stack: TenantStack, tmp_path: Path) -> None:
    path = batch_with_a_local_file(tmp_path)
    first = job_ids(relay_cli(stack.url, stack.key_of("acme"), "submit", "--batch", str(path), "--json"))
    next_second()
    with BackgroundServer(OlderRelay(stack.url)) as older, rendered_logs("info") as logs:
        second = job_ids(relay_cli(older, stack.key_of("acme"), "submit", "--batch", str(path), "--json"))
    assert second == first and len(stack.sandbox_tasks()) == 2
    seen = calls(logs.getvalue())
    assert ("POST", "/v1/jobs", 409) in seen and ("GET", "/v1/jobs", 200) in seen
    assert ("GET", "/v1/jobs/{job_id}", 200) not in seen
