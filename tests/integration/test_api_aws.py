"""The HTTP API on the AWS adapters (DynamoDB and S3 on moto): replays and output URLs behave as locally."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from handlers.adapters.aws import DynamoJobStore, S3BlobStore
from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.app.relay import Relay
from handlers.domain.jobs import Job, JobStatus, Output
from handlers.net.server import BackgroundServer
from tests.support.fakes import FakeProvider, local_relay

pytestmark = pytest.mark.integration

KEY = {"Authorization": "Bearer key-1"}
REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4}


@pytest.fixture
def relay(tmp_path: Path, jobs: DynamoJobStore, store: S3BlobStore) -> Iterator[Relay]:
    relay = local_relay(tmp_path, FakeProvider())
    relay.jobs, relay.blobs = jobs, store
    yield relay
    relay.close()


@pytest.fixture
def client(relay: Relay) -> Iterator[httpx.Client]:
    keys = ApiKeys(["key-1"])
    with BackgroundServer(create_app(relay, keys, extra_routes=dashboard_routes(relay, keys))) as url, \
            httpx.Client(base_url=url) as client:
        yield client


def test_a_replayed_idempotency_key_says_so_on_dynamodb(client: httpx.Client) -> None:
    headers = {**KEY, "Idempotency-Key": "order-aws-1"}
    first, again = (client.post("/v1/jobs", json=REQUEST, headers=headers) for _ in range(2))
    assert first.status_code == again.status_code == 202 and first.json()["id"] == again.json()["id"]
    assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"


def test_an_output_url_redirects_to_its_s3_copy(client: httpx.Client, relay: Relay) -> None:
    key = "jobs/job_on_s3/output-0.mp4"
    relay.blobs.put_stream(key, [b"\x00\x00\x00\x18ftypmp42" + b"v" * 64], content_type="video/mp4")
    now = relay.clock()
    relay.jobs.create(Job(id="job_on_s3", request=REQUEST, fingerprint="f", created_at=now, updated_at=now,
                          status=JobStatus.PUBLISHED,
                          outputs=(Output(uri=relay.blobs.uri(key), key=key, size=80, sha256="0" * 64),)))
    [output] = client.get("/v1/jobs/job_on_s3", headers=KEY).json()["outputs"]
    answer = client.get(output["url"], headers=KEY)
    assert output["uri"].startswith("s3://") and answer.status_code == 307
    assert key in answer.headers["location"]
