"""A job through the sandbox on the AWS adapters (DynamoDB, S3, SQS, SNS on moto): its video is read through
S3 byte ranges, checked and pictured; the pictures land in S3 beside it and the completed event carries
presigned URLs that fetch them. Strict checks and unplayable results fail the job as on the local adapters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from handlers.adapters.aws import AwsNames, aws_clients
from handlers.adapters.aws.bootstrap import bootstrap
from handlers.app.relay import Relay
from handlers.app.settings import Settings
from handlers.app.wiring import build_relay
from handlers.domain.jobs import JobStatus
from handlers.media.frames import FRAME_ROLES
from handlers.tooling.event_schemas import event_schema
from handlers.usecases.media import UNPLAYABLE_ATTEMPTS
from tests.support.clips import HTML_PAGE
from tests.support.fakes import FakeProvider
from tests.support.media_jobs import drain_events, picture_size, run_job, stored_bytes
from tests.support.media_server import MediaServer
from tests.support.servers import running_sandbox

pytestmark = pytest.mark.integration
REQUEST: dict[str, Any] = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm",
                           "duration": 4, "quality": "480p", "aspect_ratio": "16:9"}


def aws_settings(moto_server: str, tmp_path: Path, base_url: str, **env: str) -> Settings:
    """Settings for fresh AWS resources on moto (created here), the provider at ``base_url``."""
    suffix = uuid.uuid4().hex[:10]
    values = {"RELAY_BACKEND": "aws", "AWS_ENDPOINT_URL": moto_server, "EVOLINK_BASE_URL": base_url,
              "RELAY_DATA_DIR": str(tmp_path / "relay"), "RELAY_API_KEYS": "key-1",
              "RELAY_CALLBACK_SECRET": "k1:" + "a" * 32, "RELAY_PUBLIC_URL": "http://127.0.0.1:9",
              "RELAY_TABLE": f"jobs-{suffix}", "RELAY_BUCKET": f"videos-{suffix}",
              "RELAY_INGEST_QUEUE": f"ingest-{suffix}", "RELAY_REQUESTS_QUEUE": f"requests-{suffix}",
              "RELAY_TOPIC": f"events-{suffix}", "RELAY_SUBSCRIBER_QUEUE_PREFIX": f"sub-{suffix}-", **env}
    names = AwsNames.from_env(values)
    bootstrap(aws_clients(names, endpoint_url=moto_server), names, {"default": ["*"]})
    return Settings.from_env(values)


@contextmanager
def aws_relay(moto_server: str, tmp_path: Path, sandbox: dict[str, Any] | None = None,
              **env: str) -> Iterator[Relay]:
    with running_sandbox(tmp_path / "sandbox", speed=400.0, **(sandbox or {})) as running:
        relay = build_relay(aws_settings(moto_server, tmp_path, running.url, **env))
        try:
            yield relay
        finally:
            relay.close()


def test_a_job_on_aws_gets_facts_checks_and_pictures_in_s3(moto_server: str, tmp_path: Path) -> None:
    with aws_relay(moto_server, tmp_path) as relay:
        job = run_job(relay, REQUEST)
        [output] = job.outputs
        sizes = {role: picture_size(stored_bytes(relay, output.frame_key(role))) for role in FRAME_ROLES}
    assert job.status is JobStatus.PUBLISHED and output.uri.startswith("s3://")
    assert output.media is not None and (output.media["duration"], output.media["width"], output.media["height"],
                                         output.media["has_audio"]) == (4.0, 864, 496, True)
    assert [c["name"] for c in output.checks if c["ok"]] == ["duration", "resolution", "aspect_ratio", "audio"]
    assert all(uri.startswith("s3://") and uri.endswith(".jpg") for uri in output.frames.values())
    assert sizes == {"poster": (864, 496), "poster-thumbnail": (320, 184), "last-frame": (864, 496),
                     "last-frame-thumbnail": (320, 184)}


def test_the_completed_event_s_presigned_urls_fetch_the_pictures(moto_server: str, tmp_path: Path) -> None:
    with aws_relay(moto_server, tmp_path) as relay:
        job = run_job(relay, REQUEST)
        [event] = [e for e in drain_events(relay) if e["type"].endswith(".completed")]
        [sent] = event["data"]["outputs"]
        fetched = {role: httpx.get(url, timeout=10) for role, url in sent["frame_urls"].items()}
        stored = {role: stored_bytes(relay, job.outputs[0].frame_key(role)) for role in FRAME_ROLES}
    jsonschema.validate(event, event_schema(event["type"]))
    assert set(fetched) == set(FRAME_ROLES) and sent["frame_urls_expire_at"].endswith("Z")
    assert {role: (answer.status_code, answer.content) for role, answer in fetched.items()} == {
        role: (200, data) for role, data in stored.items()}
    assert sent["media"] == job.outputs[0].media and sent["frames"] == job.outputs[0].frames


def test_strict_checks_fail_a_wrong_video_on_aws(moto_server: str, tmp_path: Path) -> None:
    with aws_relay(moto_server, tmp_path, {"wrong_output_rate": 1.0, "wrong_output": "resolution"},
                   RELAY_OUTPUT_CHECKS="strict") as relay:
        job = run_job(relay, REQUEST)
    assert job.status is JobStatus.FAILED and job.outputs == ()
    assert job.error is not None and job.error["code"] == "output_mismatch"
    assert [c["name"] for c in job.error["checks"] if not c["ok"]] == ["resolution"]


def test_an_unplayable_result_fails_the_job_on_aws(moto_server: str, tmp_path: Path) -> None:
    with MediaServer() as server:
        server.add("/video.mp4", HTML_PAGE, content_type="application/octet-stream")
        provider = FakeProvider(results=[server.url("/video.mp4")])
        relay = build_relay(aws_settings(moto_server, tmp_path, server.url("")), provider=provider)
        try:
            job = run_job(relay, REQUEST, finish=provider.finish, attempts=UNPLAYABLE_ATTEMPTS + 2)
            [event] = drain_events(relay)
        finally:
            relay.close()
        downloads = [r for r in server.requests if r.path == "/video.mp4" and r.method == "GET"]
    assert len(downloads) == UNPLAYABLE_ATTEMPTS
    assert job.status is JobStatus.FAILED and job.error is not None and job.error["code"] == "unplayable_output"
    assert event["type"] == "io.seedance-relay.job.failed" and event["data"]["outputs"] == []
