"""``GET /metrics`` on a real local relay: figures in the Prometheus text format, behind an API key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.types import ASGIApp

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.metrics import metrics_routes
from handlers.app.relay import Relay
from handlers.app.runtime import run_worker_once
from handlers.base.errors import ProviderUnavailable
from handlers.net.server import BackgroundServer
from handlers.provider.evolink.task import Task
from handlers.usecases import submit
from tests.functional.conftest import VIDEO
from tests.support.fakes import FakeProvider, drain, local_relay
from tests.support.media_server import MediaServer

KEY = "key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}
REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4}


@pytest.fixture
def relay(tmp_path: Path, provider: FakeProvider, media: MediaServer) -> Iterator[Relay]:
    relay = local_relay(tmp_path, provider, EVOLINK_BASE_URL=media.url(""), RELAY_SUBSCRIBERS="crm:completed")
    yield relay
    relay.close()


def app_for(relay: Relay) -> Starlette:
    """The app as ``serve`` runs it: its routes, the metrics route, and the access log feeding the metrics."""
    keys = ApiKeys([KEY])
    return create_app(relay, keys)


@contextmanager
def serving(app: ASGIApp) -> Iterator[httpx.Client]:
    """``app`` on a real socket, and a client for it."""
    with BackgroundServer(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``(sample name, labels) → value`` parsed with prometheus_client's own parser."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(figures: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return figures.get((name, frozenset(labels.items())), 0.0)


def test_metrics_without_an_api_key_is_refused_with_the_json_error_body(relay: Relay) -> None:
    with serving(app_for(relay)) as client:
        response = client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_metrics_are_in_the_prometheus_text_format(relay: Relay) -> None:
    with serving(app_for(relay)) as client:
        response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"relay_jobs", "relay_queue_messages", "relay_queue_dead_letters", "relay_http_requests",
            "relay_callbacks", "relay_ingest_attempts", "relay_copy_bytes", "relay_provider_calls"} <= names


def test_jobs_by_status_and_queue_depth_are_read_from_the_stores_at_scrape_time(relay: Relay) -> None:
    submit(relay, dict(REQUEST), scope="test")
    submit(relay, {**REQUEST, "prompt": "another"}, scope="test")
    relay.ingest_queue.send({"job_id": "job_missing"})
    figures = samples(relay.metrics.exposition().decode())
    assert value(figures, "relay_jobs", status="submitted") == 2
    assert value(figures, "relay_jobs", status="published") == 0
    assert value(figures, "relay_queue_messages", queue="ingest", state="visible") == 1
    assert value(figures, "relay_queue_dead_letters", queue="ingest") == 0
    assert ("relay_queue_dead_letters", frozenset({("queue", "subscriber:crm")})) in figures


def test_a_dead_letter_shows_in_its_queue_figure(tmp_path: Path, provider: FakeProvider) -> None:
    relay = local_relay(tmp_path, provider, RELAY_QUEUE_MAX_RECEIVES="1")
    try:
        relay.ingest_queue.send({"job_id": "job_missing"})
        [message] = relay.ingest_queue.receive(wait=0)
        relay.ingest_queue.retry_later(message, 0)
        relay.ingest_queue.receive(wait=0)  # over its receive limit: dead-lettered
        figures = samples(relay.metrics.exposition().decode())
    finally:
        relay.close()
    assert value(figures, "relay_queue_dead_letters", queue="ingest") == 1


def test_a_job_through_the_api_counts_requests_callbacks_ingest_copy_and_provider_calls(
        relay: Relay, provider: FakeProvider) -> None:
    with serving(app_for(relay)) as client:
        job = client.post("/v1/jobs", json=REQUEST, headers=AUTH).json()
        provider.finish(job["task_id"])
        path = f"/v1/callbacks/evolink/{job['id']}"
        token = relay.signer.sign(job["id"])
        assert client.post(path, params={"token": token}, json={"id": job["task_id"]}).status_code == 202
        assert client.post(path, params={"token": "wrong"}, json={}).status_code == 401
        assert client.post(path, params={"token": token}, content=b"{").status_code == 400
        drain(relay)
        figures = samples(client.get("/metrics", headers=AUTH).text)
    route = "/v1/callbacks/evolink/{job_id}"
    assert value(figures, "relay_http_requests_total", method="POST", route="/v1/jobs", status="202") == 1
    assert value(figures, "relay_http_requests_total", method="POST", route=route, status="401") == 1
    assert value(figures, "relay_callbacks_total", result="accepted", reason="ok") == 1
    assert value(figures, "relay_callbacks_total", result="refused", reason="unauthorized") == 1
    assert value(figures, "relay_callbacks_total", result="refused", reason="invalid_body") == 1
    assert value(figures, "relay_ingest_attempts_total", outcome="done") == 1
    assert value(figures, "relay_copy_bytes_total") == len(VIDEO)
    assert value(figures, "relay_copy_duration_seconds_count") == 1
    assert value(figures, "relay_provider_calls_total", operation="create_task", outcome="ok") == 1
    assert value(figures, "relay_provider_calls_total", operation="get_task", outcome="ok") == 1
    assert value(figures, "relay_jobs", status="published") == 1


class BusyProvider(FakeProvider):
    """Creates tasks, then answers every read with EvoLink's 503."""

    def get_task(self, task_id: str) -> Task:
        raise ProviderUnavailable("EvoLink 503 service_busy", status=503, code="service_busy")


def test_a_failing_provider_call_and_its_retried_ingest_are_counted_by_outcome(tmp_path: Path) -> None:
    relay = local_relay(tmp_path, BusyProvider())
    try:
        job = submit(relay, dict(REQUEST), scope="test")
        relay.ingest_queue.send({"job_id": job.id, "task_id": job.task_id, "source": "reconciler"})
        run_worker_once(relay, relay.ingest_queue, worker="test", wait=0)
        figures = samples(relay.metrics.exposition().decode())
    finally:
        relay.close()
    assert value(figures, "relay_provider_calls_total", operation="get_task", outcome="provider_unavailable") == 1
    assert value(figures, "relay_ingest_attempts_total", outcome="retry") == 1
    assert value(figures, "relay_ingest_failures_total", code="service_busy") == 1


def test_two_relays_in_one_process_keep_their_own_figures(relay: Relay, tmp_path: Path,
                                                          provider: FakeProvider) -> None:
    other = local_relay(tmp_path / "other", provider)
    try:
        relay.metrics.observe_request("GET", "/healthz", 200, 0.001)
        figures = samples(other.metrics.exposition().decode())
    finally:
        other.close()
    assert value(figures, "relay_http_requests_total", method="GET", route="/healthz", status="200") == 0


def test_metrics_over_a_real_socket_need_the_key_and_name_no_raw_path(relay: Relay) -> None:
    with BackgroundServer(app_for(relay)) as url:
        httpx.get(f"{url}/v1/jobs/job_secret-looking-id", headers=AUTH, timeout=10)
        refused = httpx.get(f"{url}/metrics", timeout=10)
        scraped = httpx.get(f"{url}/metrics", headers=AUTH, timeout=10)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert scraped.status_code == 200
    assert 'route="/v1/jobs/{job_id}"' in scraped.text and "job_secret-looking-id" not in scraped.text
    assert re.search(r'relay_http_requests_total\{method="GET",route="/metrics",status="401"\} 1\.0', scraped.text)


def test_the_metrics_route_alone_mounts_in_any_starlette_app(relay: Relay) -> None:
    app = Starlette(routes=metrics_routes(relay, ApiKeys([KEY])))
    with serving(app) as client:
        assert client.get("/metrics", headers=AUTH).status_code == 200
