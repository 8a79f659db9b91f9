"""One error shape for every answer, and no internal detail in any of them (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.app.relay import Relay
from handlers.base.errors import StorageError, StorageFull
from handlers.domain.jobs import Job
from handlers.net.server import BackgroundServer
from tests.support.logs import rendered_logs

KEY = {"Authorization": "Bearer key-1"}
REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4}
INTERNAL = "/var/lib/seedance-relay/jobs.sqlite"


class FailingJobs:
    """A job store whose writes and reads fail with ``error``; everything else is the real store's."""

    def __init__(self, real: Any, error: Exception) -> None:
        self._real = real
        self._error = error

    def create(self, job: Job) -> Job:
        raise self._error

    def get(self, job_id: str) -> Job:
        raise self._error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def serve(relay: Relay) -> Iterator[Any]:
    def start(extra: list[Route] | None = None) -> str:
        server = BackgroundServer(create_app(relay, ApiKeys(["key-1"]), extra_routes=extra))
        servers.append(server)
        return server.start()

    servers: list[BackgroundServer] = []
    yield start
    for server in servers:
        server.stop()


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert response.status_code == status and response.headers["content-type"] == "application/json"
    assert body["error"]["code"] == code and isinstance(body["error"]["message"], str)
    return body


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/v1/nothing", 404, "not_found"),
    ("GET", "/docs/assets/no-such-file.js", 404, "not_found"),
    ("DELETE", "/v1/jobs", 405, "method_not_allowed"),
    ("GET", "/v1/callbacks/evolink/job_x", 405, "method_not_allowed"),
])
def test_unknown_routes_and_wrong_methods_answer_the_json_error_body(serve: Any, method: str, path: str,
                                                                     status: int, code: str) -> None:
    response = httpx.request(method, serve() + path)
    assert_error_shape(response, status, code)
    assert response.headers["x-request-id"]
    if status == 405:
        assert "POST" in response.headers["allow"] or "GET" in response.headers["allow"]


def test_a_full_disk_answers_503_storage_full_without_a_path(serve: Any, relay: Relay) -> None:
    relay.jobs = FailingJobs(relay.jobs, StorageFull(f"database or disk is full: {INTERNAL}"))
    response = httpx.post(serve() + "/v1/jobs", json=REQUEST, headers=KEY)
    body = assert_error_shape(response, 503, "storage_full")
    assert INTERNAL not in response.text and "/" not in body["error"]["message"]


@pytest.mark.parametrize("error", [StorageError(f"cannot open {INTERNAL}"), OSError(f"[Errno 5] {INTERNAL}"),
                                   RuntimeError(f"boom in {INTERNAL}")])
def test_server_errors_never_show_their_exception_text(serve: Any, relay: Relay, error: Exception) -> None:
    relay.jobs = FailingJobs(relay.jobs, error)
    response = httpx.get(serve() + "/v1/jobs/job_x", headers=KEY)
    assert response.status_code == 500 and INTERNAL not in response.text
    assert response.json()["error"]["message"] == "internal error"


def test_an_error_outside_the_answering_wrapper_still_answers_the_json_500(serve: Any) -> None:
    async def broken(_: Request) -> Response:
        raise RuntimeError(f"unexpected in {INTERNAL}")

    with rendered_logs() as logs:
        response = httpx.get(serve([Route("/broken", broken)]) + "/broken")
    assert_error_shape(response, 500, "internal_error")
    assert INTERNAL not in response.text
    unhandled = [json.loads(line) for line in logs.getvalue().splitlines() if '"api.unhandled"' in line]
    assert [line["request_id"] for line in unhandled] == [response.headers["x-request-id"]]


def test_a_client_that_leaves_mid_body_is_a_client_event_not_an_error(serve: Any) -> None:
    url = httpx.URL(serve())
    with rendered_logs() as logs:
        with socket.create_connection((url.host, url.port)) as conn:
            conn.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer key-1\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"model\": ")
            time.sleep(0.2)
        deadline = time.monotonic() + 5
        while '"api.request"' not in logs.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
    events = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    names = [event["event"] for event in events]
    assert "api.client_disconnected" in names and "api.unhandled" not in names
    assert [e["level"] for e in events if e["event"] == "api.client_disconnected"] == ["info"]
