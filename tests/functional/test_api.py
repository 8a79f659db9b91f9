"""The HTTP API on a real socket (uvicorn on 127.0.0.1): auth, validation errors, listing, callbacks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.app.relay import Relay
from handlers.base.errors import ProviderRejected
from handlers.domain.jobs import Job, JobStatus, Output
from handlers.net.server import BackgroundServer
from tests.support.fakes import FakeProvider, local_relay

KEY = {"Authorization": "Bearer key-1"}
REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4}


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def relay(tmp_path: Path, provider: FakeProvider) -> Iterator[Relay]:
    relay = local_relay(tmp_path, provider)
    yield relay
    relay.close()


@pytest.fixture
def client(relay: Relay) -> Iterator[httpx.Client]:
    keys = ApiKeys(["key-1", "key-2"])
    app = create_app(relay, keys, extra_routes=dashboard_routes(relay, keys))
    with BackgroundServer(app) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/jobs"), ("GET", "/v1/jobs"), ("GET", "/v1/jobs/job_x")])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "key-1"}])
def test_job_routes_need_a_valid_bearer_key(client: httpx.Client, method: str, path: str,
                                            headers: dict[str, str]) -> None:
    response = client.request(method, path, headers=headers, json=REQUEST)  # type: ignore[arg-type]
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "a valid bearer API key is required"}}
    assert response.headers["www-authenticate"] == "Bearer"


def test_every_configured_key_works(client: httpx.Client) -> None:
    assert client.get("/v1/jobs", headers={"Authorization": "Bearer key-2"}).status_code == 200


def test_submitting_answers_202_with_the_job(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", json={**REQUEST, "metadata": {"a": 1}}, headers=KEY)
    job = response.json()
    assert response.status_code == 202 and job["status"] == "submitted" and job["metadata"] == {"a": 1}
    assert client.get(f"/v1/jobs/{job['id']}", headers=KEY).json() == job


def test_a_replayed_idempotency_key_answers_the_same_job_and_says_so(client: httpx.Client,
                                                                     provider: FakeProvider) -> None:
    headers = {**KEY, "Idempotency-Key": "order-42"}
    first = client.post("/v1/jobs", json=REQUEST, headers=headers)
    again = client.post("/v1/jobs", json=REQUEST, headers=headers)
    assert first.status_code == again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
    assert len(provider.creates) == 1


def test_a_new_idempotency_key_is_not_a_replay(client: httpx.Client) -> None:
    first = client.post("/v1/jobs", json=REQUEST, headers={**KEY, "Idempotency-Key": "order-1"})
    other = client.post("/v1/jobs", json=REQUEST, headers={**KEY, "Idempotency-Key": "order-2"})
    assert first.json()["id"] != other.json()["id"]
    assert "idempotent-replayed" not in other.headers


def test_job_times_are_rfc3339_utc(client: httpx.Client) -> None:
    job = client.post("/v1/jobs", json=REQUEST, headers=KEY).json()
    for name in ("created_at", "updated_at", "submitted_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", job[name]), (name, job[name])
    assert job["finished_at"] is None


def test_each_output_names_the_route_that_serves_it(client: httpx.Client, relay: Relay) -> None:
    data = b"\x00\x00\x00\x18ftypmp42" + b"video bytes" * 100
    key = "jobs/job_with_output/output-0.mp4"
    relay.blobs.put_stream(key, [data], content_type="video/mp4", metadata={})
    now = relay.clock()
    relay.jobs.create(Job(id="job_with_output", request=REQUEST, fingerprint="f", created_at=now, updated_at=now,
                          status=JobStatus.PUBLISHED, outputs=(Output(uri=relay.blobs.uri(key), key=key,
                                                                      size=len(data), sha256="0" * 64),)))
    output = client.get("/v1/jobs/job_with_output", headers=KEY).json()["outputs"][0]
    assert output["url"] == "/v1/jobs/job_with_output/outputs/0" and output["uri"].startswith("file://")
    served = client.get(output["url"], headers=KEY)
    assert served.status_code == 200 and served.content == data


def test_invalid_requests_list_every_violation_with_its_field(client: httpx.Client) -> None:
    body = {**REQUEST, "duration": 99, "quality": "8k", "callback_url": "https://x.example/cb", "metadata": []}
    response = client.post("/v1/jobs", json=body, headers=KEY)
    errors = {(e["field"], e["code"]) for e in response.json()["error"]["errors"]}
    assert response.status_code == 400
    assert {("duration", "out_of_range"), ("quality", "invalid_choice"), ("callback_url", "not_allowed"),
            ("metadata", "invalid_type")} <= errors


@pytest.mark.parametrize(("body", "code"), [(b"{nope", "invalid_json"), (b"[1]", "invalid_type")])
def test_bodies_that_are_not_json_objects_are_refused(client: httpx.Client, body: bytes, code: str) -> None:
    response = client.post("/v1/jobs", content=body, headers=KEY)
    assert response.status_code == 400 and response.json()["error"]["errors"][0]["code"] == code


def test_a_bad_idempotency_key_is_named(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", json=REQUEST, headers={**KEY, "Idempotency-Key": "has spaces"})
    assert response.status_code == 400
    assert response.json()["error"]["errors"][0]["field"] == "Idempotency-Key"


def test_a_rejected_job_answers_422_with_the_job(client: httpx.Client, provider: FakeProvider) -> None:
    provider.create_error = ProviderRejected("EvoLink 403", status=403, code="model_access_denied")
    response = client.post("/v1/jobs", json=REQUEST, headers=KEY)
    assert response.status_code == 422 and response.json()["status"] == "rejected"


def test_unknown_jobs_are_404(client: httpx.Client) -> None:
    response = client.get("/v1/jobs/job_nope", headers=KEY)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_listing_pages_newest_first_and_filters_by_status(client: httpx.Client, provider: FakeProvider) -> None:
    ids = [client.post("/v1/jobs", json={**REQUEST, "prompt": f"p{i}"}, headers=KEY).json()["id"] for i in range(5)]
    provider.create_error = ProviderRejected("no", status=400, code="invalid_request")
    rejected = client.post("/v1/jobs", json={**REQUEST, "prompt": "bad"}, headers=KEY).json()["id"]
    seen: list[str] = []
    cursor: Any = None
    while True:
        page = client.get("/v1/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=KEY).json()
        seen += [j["id"] for j in page["jobs"]]
        if not (cursor := page["next_cursor"]):
            break
    only = client.get("/v1/jobs", params={"status": "rejected"}, headers=KEY).json()["jobs"]
    assert seen == [rejected, *reversed(ids)]
    assert [j["id"] for j in only] == [rejected]


@pytest.mark.parametrize(("params", "field"), [({"limit": 0}, "limit"), ({"limit": 101}, "limit"),
                                               ({"limit": "x"}, "limit"), ({"status": "done"}, "status"),
                                               ({"cursor": "garbage!"}, "cursor")])
def test_listing_parameters_are_checked(client: httpx.Client, params: dict[str, Any], field: str) -> None:
    response = client.get("/v1/jobs", params=params, headers=KEY)
    assert response.status_code == 400 and response.json()["error"]["errors"][0]["field"] == field


def test_health_and_openapi_need_no_key(client: httpx.Client) -> None:
    health = client.get("/healthz").json()
    spec = client.get("/openapi.json").json()
    assert health == {"ok": True, "backend": "local", "provider": "sandbox"}
    assert spec["openapi"].startswith("3.1") and "/v1/jobs" in spec["paths"]


def test_a_valid_callback_is_queued_and_a_wrong_one_refused(client: httpx.Client, relay: Relay) -> None:
    job = client.post("/v1/jobs", json=REQUEST, headers=KEY).json()
    url = f"/v1/callbacks/evolink/{job['id']}"
    good = client.post(url, params={"token": relay.signer.sign(job["id"])}, json={"id": job["task_id"]})
    bad = client.post(url, params={"token": "k1.bad"}, json={"id": job["task_id"]})
    assert (good.status_code, good.json()) == (202, {"accepted": True})
    assert bad.status_code == 401 and relay.ingest_queue.depth()["visible"] == 1
