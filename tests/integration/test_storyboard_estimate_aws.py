"""``POST /v1/storyboards/estimates`` on DynamoDB (moto): a shot naming an earlier job of the caller's tenant is
priced at the length its stored video has, as on the local backend; another tenant's job is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.adapters.aws import DynamoJobStore
from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.app.relay import Relay
from handlers.domain.jobs import Job, JobStatus, Outcome, Output
from handlers.domain.pricing import estimate
from handlers.net.server import BackgroundServer
from tests.support.fakes import FakeProvider, local_relay

pytestmark = pytest.mark.integration

OURS, THEIRS = {"Authorization": "Bearer key-1"}, {"Authorization": "Bearer other-key-1"}
INTRO = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse at dawn", "duration": 4, "quality": "480p"}
EARLIER = "job_" + "e" * 26
MORE = {"model": "seedance-2.0-reference-to-video", "prompt": "continue @video1", "duration": 5, "quality": "480p",
        "video_urls": [f"job://{EARLIER}/output-0"]}
BOARD: dict[str, Any] = {"shots": [{"id": "intro", "request": INTRO}, {"id": "more", "request": MORE}]}


@pytest.fixture
def relay(tmp_path: Path, jobs: DynamoJobStore) -> Iterator[Relay]:
    """The relay on the DynamoDB job store, holding the default tenant's published 2.5 s job ``EARLIER``."""
    relay = local_relay(tmp_path, FakeProvider())
    relay.jobs = jobs
    key, now = f"jobs/{EARLIER}/output-0.mp4", relay.clock()
    relay.jobs.create(Job(id=EARLIER, request=INTRO, fingerprint="f", created_at=now, updated_at=now,
                          status=JobStatus.PUBLISHED, outcome=Outcome.COMPLETED, finished_at=now,
                          outputs=(Output(uri=f"s3://videos/{key}", key=key, size=1024, sha256="0" * 64,
                                          media={"duration": 2.5}),)))
    yield relay
    relay.close()


@pytest.fixture
def client(relay: Relay) -> Iterator[httpx.Client]:
    with BackgroundServer(create_app(relay, ApiKeys(["key-1", "other:other-key-1"]))) as url, \
            httpx.Client(base_url=url) as client:
        yield client


def test_a_shot_naming_an_earlier_job_is_priced_at_its_stored_length_on_dynamodb(client: httpx.Client,
                                                                                 relay: Relay) -> None:
    response = client.post("/v1/storyboards/estimates", json=BOARD, headers=OURS)
    assert response.status_code == 200, response.text
    shots = {shot["id"]: shot["credits"] for shot in response.json()["shots"]}
    assert shots["more"] == estimate(MORE, [2.5], relay.prices).credits


def test_another_tenants_job_is_refused_naming_the_shots_field_on_dynamodb(client: httpx.Client) -> None:
    response = client.post("/v1/storyboards/estimates", json=BOARD, headers=THEIRS)
    assert response.status_code == 400
    assert [(e["field"], e["code"]) for e in response.json()["error"]["errors"]] == [
        ("shots[1].request.video_urls[0]", "unknown_reference")]
