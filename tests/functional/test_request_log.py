"""Request ids and the access log, as the real logging pipeline renders them (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.app.relay import Relay
from handlers.net.server import BackgroundServer
from tests.support.logs import rendered_logs

KEY = {"Authorization": "Bearer key-1"}
REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4}
Seen = list[tuple[str, str, int, float]]


@pytest.fixture
def seen() -> Seen:
    return []


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    with rendered_logs(level="info") as stream:
        yield stream


@pytest.fixture
def client(relay: Relay, seen: Seen, logs: io.StringIO) -> Iterator[httpx.Client]:
    app = create_app(relay, ApiKeys(["key-1"]), on_request=lambda *args: seen.append(args))
    with BackgroundServer(app) as url, httpx.Client(base_url=url) as client:
        yield client


def lines(logs: io.StringIO, event: str | None = None) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    return [line for line in parsed if event is None or line["event"] == event]


@pytest.mark.parametrize("sent", ["abc-123", "A.b_c-9", "x" * 128])
def test_a_well_formed_client_request_id_is_echoed(client: httpx.Client, sent: str) -> None:
    assert client.get("/healthz", headers={"X-Request-Id": sent}).headers["x-request-id"] == sent


@pytest.mark.parametrize("sent", [None, "", "x" * 129, "has space", "semi;colon", "é".encode()])
def test_a_missing_or_malformed_request_id_is_replaced_by_a_new_one(client: httpx.Client,
                                                                    sent: str | bytes | None) -> None:
    value = sent.encode() if isinstance(sent, str) else sent
    headers = [] if value is None else [(b"X-Request-Id", value)]
    first, second = (client.get("/healthz", headers=headers).headers["x-request-id"] for _ in range(2))
    assert first != second and first != sent and 1 <= len(first) <= 128


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/v1/jobs", 401), ("GET", "/nowhere", 404),
                                                        ("PUT", "/healthz", 405), ("POST", "/v1/jobs", 400)])
def test_error_answers_carry_the_request_id_too(client: httpx.Client, method: str, path: str, status: int) -> None:
    headers = {**KEY, "X-Request-Id": "err-1"} if status == 400 else {"X-Request-Id": "err-1"}
    response = client.request(method, path, headers=headers, content=b"{")
    assert response.status_code == status and response.headers["x-request-id"] == "err-1"


def test_every_log_line_of_a_request_carries_its_id(client: httpx.Client, logs: io.StringIO) -> None:
    response = client.post("/v1/jobs", json=REQUEST, headers={**KEY, "X-Request-Id": "submit-7"})
    job_lines = [line for line in lines(logs) if line.get("job_id") == response.json()["id"]]
    assert "job.submitted" in {line["event"] for line in job_lines}
    assert {line["request_id"] for line in job_lines} == {"submit-7"}


def test_one_access_line_per_request_with_the_route_template_and_caller(client: httpx.Client, relay: Relay,
                                                                        logs: io.StringIO) -> None:
    job = client.post("/v1/jobs", json=REQUEST, headers=KEY).json()
    token = relay.signer.sign(job["id"])
    client.get(f"/v1/jobs/{job['id']}", params={"secret_looking": "q-value-77"}, headers=KEY)
    client.post(f"/v1/callbacks/evolink/{job['id']}", params={"token": token}, json={"id": job["task_id"]})
    access = lines(logs, "api.request")
    assert [(a["method"], a["route"], a["status"]) for a in access] == [
        ("POST", "/v1/jobs", 202), ("GET", "/v1/jobs/{job_id}", 200),
        ("POST", "/v1/callbacks/evolink/{job_id}", 202)]
    callers = [a["caller"] for a in access]
    assert callers[0] == callers[1] and len(callers[0]) == 16 and callers[2] is None
    assert all(a["duration_ms"] >= 0 and a["request_id"] for a in access)
    rendered = logs.getvalue()
    assert token not in rendered and "q-value-77" not in rendered and "key-1" not in rendered


def test_the_observer_sees_method_route_status_and_seconds(client: httpx.Client, seen: Seen) -> None:
    client.get("/v1/jobs/job_nope", headers=KEY)
    client.get("/nowhere")
    assert [s[:3] for s in seen] == [("GET", "/v1/jobs/{job_id}", 404), ("GET", "unmatched", 404)]
    assert all(0 <= s[3] < 5 for s in seen)


@pytest.mark.parametrize(("target", "token", "body", "reason"), [
    ("job", "k1.forged", b"{}", "bad_token"),
    ("job", "good", b"x" * (256 * 1024 + 1), "too_large"),
    ("job", "good", b"{nope", "invalid_json"),
    ("other", "good", b"{}", "unknown_job"),
])
def test_refused_callbacks_are_logged_with_the_job_and_reason_but_never_the_token(
        client: httpx.Client, relay: Relay, logs: io.StringIO, target: str, token: str, body: bytes,
        reason: str) -> None:
    job_id = client.post("/v1/jobs", json=REQUEST, headers=KEY).json()["id"] if target == "job" else "job_" + "0" * 26
    sent = relay.signer.sign(job_id) if token == "good" else token
    response = client.post(f"/v1/callbacks/evolink/{job_id}", params={"token": sent}, content=body)
    refused = lines(logs, "callback.refused")
    assert response.status_code >= 400
    assert [(r["job_id"], r["reason"]) for r in refused] == [(job_id, reason)]
    assert sent not in logs.getvalue()
