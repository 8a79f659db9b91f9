"""Lets no one in: forged callbacks, missing keys, fuzzed requests, and secrets kept out of logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.app.relay import Relay
from handlers.app.runtime import run_worker_once
from handlers.app.settings import Settings
from handlers.app.wiring import build_relay
from handlers.domain.jobs import JobStatus
from handlers.domain.tokens import TokenSigner
from handlers.net.server import BackgroundServer
from handlers.usecases import accept_callback, submit
from tests.support.fakes import FakeProvider, local_relay
from tests.support.logs import rendered_logs
from tests.support.media_server import MediaServer
from tests.support.servers import running_sandbox

REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse", "duration": 4}
NEW, OLD, RETIRED = "k2:" + "n" * 32, "k1:" + "o" * 32, "k0:" + "x" * 32


@pytest.fixture
def rotated(tmp_path: Path) -> Iterator[tuple[Relay, FakeProvider]]:
    provider = FakeProvider()
    relay = local_relay(tmp_path, provider, RELAY_CALLBACK_SECRET=f"{NEW},{OLD}")
    yield relay, provider
    relay.close()


def test_forged_callbacks_never_change_a_job(rotated: tuple[Relay, FakeProvider]) -> None:
    relay, _ = rotated
    job, other = submit(relay, REQUEST), submit(relay, {**REQUEST, "prompt": "another"})
    with BackgroundServer(create_app(relay, ApiKeys(["key-1"]))) as url:
        post = _poster(url, job.id)
        answers = {
            "missing": post(None), "wrong": post("k2.AAAA"),
            "retired key": post(TokenSigner.from_config([RETIRED]).sign(job.id)),
            "other job's token": post(relay.signer.sign(other.id)),
            "unknown job": httpx.post(f"{url}/v1/callbacks/evolink/job_nope",
                                      params={"token": relay.signer.sign("job_nope")}, json={}).status_code,
            "oversize": post(relay.signer.sign(job.id), b"x" * 300_000),
            "malformed": post(relay.signer.sign(job.id), b"{nope"),
        }
        rotated_ok = post(TokenSigner.from_config([OLD]).sign(job.id))
    assert answers == {"missing": 401, "wrong": 401, "retired key": 401, "other job's token": 401,
                       "unknown job": 401, "oversize": 413, "malformed": 400}
    assert rotated_ok == 202  # a token signed before the rotation still works
    assert relay.jobs.get(job.id).version == job.version and relay.ingest_queue.depth()["visible"] == 1


def _poster(url: str, job_id: str) -> Any:
    def post(token: str | None, body: bytes = b'{"id": "task-unified-1-abcdefgh"}') -> int:
        params = {"token": token} if token is not None else {}
        return httpx.post(f"{url}/v1/callbacks/evolink/{job_id}", params=params, content=body).status_code

    return post


@pytest.mark.parametrize("target", ["http://127.0.0.1:{port}/x.mp4", "http://169.254.169.254/latest/meta-data/",
                                    "https://10.0.0.7/video.mp4", "https://[::1]:{port}/x.mp4", "file:///etc/passwd",
                                    "https://localhost:{port}/x.mp4"])
def test_results_pointing_inside_are_never_fetched(tmp_path: Path, target: str) -> None:
    with MediaServer() as inside:
        inside.add("/x.mp4", b"\x00" * 2048, content_type="video/mp4")
        provider = FakeProvider(results=[target.format(port=inside.url("").rsplit(":", 1)[1].rstrip("/"))])
        relay = local_relay(tmp_path, provider)
        try:
            job = submit(relay, REQUEST)
            provider.finish(job.task_id or "")
            accept_callback(relay, job.id, relay.signer.sign(job.id), b"{}")
            while run_worker_once(relay, relay.ingest_queue, worker="w", wait=0):
                pass
            final = relay.jobs.get(job.id)
        finally:
            relay.close()
        assert inside.requests == []
    assert final.status is JobStatus.FAILED and final.error and final.error["code"] == "unsafe_result_url"


def test_the_api_without_a_valid_key_answers_401_and_nothing_else(rotated: tuple[Relay, FakeProvider]) -> None:
    relay, _ = rotated
    job = submit(relay, REQUEST)
    with BackgroundServer(create_app(relay, ApiKeys(["key-1"]))) as url:
        bodies = {httpx.request(method, f"{url}{path}", headers=headers, json=REQUEST).text
                  for method, path in [("GET", "/v1/jobs"), ("GET", f"/v1/jobs/{job.id}"), ("POST", "/v1/jobs"),
                                       ("GET", "/v1/jobs/job_nope"), ("POST", "/v1/uploads")]
                  for headers in [{}, {"Authorization": "Bearer key-2"}, {"Authorization": "Basic a2V5LTE="}]}
    assert len(bodies) == 1 and job.id not in bodies.pop()


def test_secrets_and_tokens_never_reach_a_log(tmp_path: Path) -> None:
    evolink_key, api_key, secret = "sk-evo-REALSECRET-0123456789", "relay-api-REALSECRET-42", "k1:" + "S" * 40
    with running_sandbox(tmp_path / "sandbox", speed=400.0, api_key=evolink_key) as sandbox, rendered_logs() as logs:
        settings = Settings.from_env({"RELAY_DATA_DIR": str(tmp_path / "relay"), "EVOLINK_API_KEY": evolink_key,
                                      "EVOLINK_BASE_URL": sandbox.url, "RELAY_PUBLIC_URL": "https://relay.example",
                                      "RELAY_API_KEYS": api_key, "RELAY_CALLBACK_SECRET": secret})
        relay = build_relay(settings)
        try:
            with BackgroundServer(create_app(relay, ApiKeys(settings.api_keys))) as url:
                auth = {"Authorization": f"Bearer {api_key}"}
                job = httpx.post(f"{url}/v1/jobs", json=REQUEST, headers=auth).json()
                token = relay.signer.sign(job["id"])
                httpx.post(f"{url}/v1/callbacks/evolink/{job['id']}", params={"token": token}, json={"id": "x"})
                httpx.post(f"{url}/v1/callbacks/evolink/{job['id']}", params={"token": token + "x"}, json={})
                httpx.get(f"{url}/v1/jobs", headers={"Authorization": "Bearer wrong-" + api_key})
                while run_worker_once(relay, relay.ingest_queue, worker="w", wait=0):
                    pass
        finally:
            relay.close()
        text = logs.getvalue()
    assert "job.submitted" in text and "ingest" in text  # the flow really logged
    for leaked in (evolink_key, api_key, secret, secret.split(":", 1)[1], token):
        assert leaked not in text
    assert all(json.loads(line) for line in text.splitlines())
