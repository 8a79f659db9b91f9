"""Forged callbacks never change a job or make the relay fetch anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.domain.tokens import TokenSigner
from tests.support.media_server import MediaServer
from tests.support.pipeline import REQUEST, Pipeline, running_pipeline

pytestmark = pytest.mark.e2e
SIGNER = TokenSigner.from_config(["k1:" + "s" * 32])


def post_callback(pipeline: Pipeline, job_id: str, token: str | None, body: Any) -> httpx.Response:
    params = {"token": token} if token is not None else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert pipeline.relay is not None
    return httpx.post(f"{pipeline.relay.url}/v1/callbacks/evolink/{job_id}", params=params, content=content)


@pytest.fixture
def slow_pipeline(tmp_path: Path) -> Any:
    """Tasks take about 20 s, so a forged callback always arrives before the real one."""
    with running_pipeline(tmp_path, speed=4.0, relay_env={"RELAY_RECONCILE_EVERY": "600"}) as pipeline:
        yield pipeline


def test_missing_wrong_foreign_and_unknown_tokens_get_the_same_401(slow_pipeline: Pipeline) -> None:
    job = slow_pipeline.submit()
    other = slow_pipeline.submit({**REQUEST, "prompt": "another job"})
    forged = {"id": job["task_id"], "status": "completed", "results": ["https://evil.example/x.mp4"]}
    answers = [
        post_callback(slow_pipeline, job["id"], None, forged),
        post_callback(slow_pipeline, job["id"], "k1.wrong", forged),
        post_callback(slow_pipeline, job["id"], SIGNER.sign(other["id"]), forged),
        post_callback(slow_pipeline, job["id"], "k9." + SIGNER.sign(job["id"]).split(".")[1], forged),
        post_callback(slow_pipeline, "job_doesnotexist", SIGNER.sign("job_doesnotexist"), forged),
    ]
    assert [a.status_code for a in answers] == [401] * 5
    assert len({a.text for a in answers}) == 1
    assert slow_pipeline.job(job["id"])["updated_at"] == job["updated_at"]


def test_oversize_and_malformed_bodies_are_refused(slow_pipeline: Pipeline) -> None:
    job = slow_pipeline.submit()
    token = SIGNER.sign(job["id"])
    assert post_callback(slow_pipeline, job["id"], token, b"x" * (256 * 1024 + 1)).status_code == 413
    assert post_callback(slow_pipeline, job["id"], token, b"{not json").status_code == 400
    assert post_callback(slow_pipeline, job["id"], token, b"[1, 2]").status_code == 400
    assert slow_pipeline.job(job["id"])["status"] == "submitted"


def test_a_genuine_callback_with_a_lying_body_never_fetches_the_attackers_url(slow_pipeline: Pipeline) -> None:
    with MediaServer() as attacker:
        bait = attacker.add("/steal.mp4", b"\x00" * 1024, content_type="video/mp4")
        job = slow_pipeline.submit()
        lie = {"id": job["task_id"], "status": "completed", "progress": 100,
               "results": [bait, "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd"]}
        assert post_callback(slow_pipeline, job["id"], SIGNER.sign(job["id"]), lie).status_code == 202
        final = slow_pipeline.wait_final(job["id"], timeout=60)
        assert attacker.requests == []
    assert final["status"] == "published"
    assert final["outputs"][0]["size"] > 10_000  # the sandbox's real video, not the bait


def test_a_callback_naming_another_task_is_recorded_not_stored(slow_pipeline: Pipeline) -> None:
    job = slow_pipeline.submit()
    other_task = "task-unified-1700000000-zzzzzzzz"
    body = {"id": other_task, "status": "completed"}
    response = post_callback(slow_pipeline, job["id"], SIGNER.sign(job["id"]), body)
    final = slow_pipeline.wait_final(job["id"], timeout=60)
    assert response.status_code == 202
    assert final["task_id"] == job["task_id"] and len(final["outputs"]) == 1
    assert len(slow_pipeline.blob_files()) == 1
