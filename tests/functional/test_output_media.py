"""A job through the sandbox, on the local adapters: its stored video is read (media facts), checked against the
request, and pictured (poster, last frame, thumbnails); all of it reaches the output, the manifest and the
completed event. Wrong videos are reported, or fail the job in strict mode; a file that is not a playable MP4 is
copied again, then fails the job, and is never published."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from handlers.app.relay import Relay
from handlers.app.settings import Settings
from handlers.app.wiring import build_relay
from handlers.domain.jobs import JobStatus
from handlers.media.frames import FRAME_ROLES
from handlers.tooling.event_schemas import event_schema
from handlers.usecases.copy import unplayable_key
from handlers.usecases.media import UNPLAYABLE_ATTEMPTS
from tests.functional.conftest import VIDEO
from tests.support.clips import HTML_PAGE
from tests.support.fakes import FakeProvider, local_relay
from tests.support.media_jobs import drain_events, ingest_until_ended, picture_size, run_job, stored_bytes
from tests.support.media_server import MediaServer
from tests.support.servers import running_sandbox

REQUEST: dict[str, Any] = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm",
                           "duration": 4, "quality": "480p", "aspect_ratio": "16:9", "generate_audio": True}


@contextmanager
def sandbox_relay(tmp_path: Path, sandbox: dict[str, Any] | None = None, **env: str) -> Iterator[Relay]:
    """The relay on SQLite and a folder, its provider a sandbox over HTTP with the switches ``sandbox``."""
    with running_sandbox(tmp_path / "sandbox", speed=400.0, **(sandbox or {})) as running:
        settings = Settings.from_env({"RELAY_DATA_DIR": str(tmp_path / "relay"), "EVOLINK_BASE_URL": running.url,
                                      "RELAY_CALLBACK_SECRET": "k1:" + "s" * 32, "RELAY_API_KEYS": "key-1",
                                      "RELAY_PUBLIC_URL": "http://127.0.0.1:9", **env})
        relay = build_relay(settings)
        try:
            yield relay
        finally:
            relay.close()


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    with sandbox_relay(tmp_path) as relay:
        yield relay


def test_a_published_video_carries_its_media_facts_and_passing_checks(relay: Relay) -> None:
    job = run_job(relay, REQUEST)
    [output] = job.outputs
    assert job.status is JobStatus.PUBLISHED
    assert output.media is not None and {k: output.media[k] for k in ("duration", "width", "height", "fps")} == {
        "duration": 4.0, "width": 864, "height": 496, "fps": 24.0}
    assert (output.media["video_codec"], output.media["has_audio"], output.media["audio_codec"]) == ("h264", True,
                                                                                                   "aac")
    assert output.media["size"] == output.size and output.media["bitrate"] == round(output.size * 8 / 4.0)
    assert [(c["name"], c["ok"]) for c in output.checks] == [("duration", True), ("resolution", True),
                                                              ("aspect_ratio", True), ("audio", True)]


def test_the_poster_last_frame_and_thumbnails_are_stored_beside_the_video(relay: Relay) -> None:
    job = run_job(relay, REQUEST)
    [output] = job.outputs
    assert list(output.frames) == list(FRAME_ROLES)
    for role in FRAME_ROLES:
        key = output.frame_key(role)
        assert key.startswith(f"jobs/{job.id}/output-0.") and key.endswith(".jpg")
        assert output.frames[role] == relay.blobs.uri(key)
        assert picture_size(stored_bytes(relay, key)) == ((320, 184) if role.endswith("thumbnail") else (864, 496))
    assert relay.blobs.head(output.frame_key("poster")).content_type == "image/jpeg"  # type: ignore[union-attr]


def test_the_manifest_and_the_completed_event_carry_media_checks_and_frames(relay: Relay) -> None:
    job = run_job(relay, REQUEST)
    [output] = job.outputs
    manifest = json.loads(stored_bytes(relay, f"jobs/{job.id}/manifest.json"))
    [event] = [e for e in drain_events(relay) if e["type"].endswith(".completed")]
    [sent] = event["data"]["outputs"]
    assert manifest["outputs"] == [output.as_dict()] and manifest["task"]["id"] == job.task_id
    assert {k: sent[k] for k in ("media", "checks", "frames")} == {
        "media": output.media, "checks": list(output.checks), "frames": output.frames}
    assert "frame_urls" not in sent  # a folder makes no presigned URLs: the relay's routes serve the pictures
    jsonschema.validate(event, event_schema(event["type"]))


def test_a_wrong_video_is_reported_and_still_published(tmp_path: Path) -> None:
    with sandbox_relay(tmp_path, {"wrong_output_rate": 1.0, "wrong_output": "audio"}) as relay:
        job = run_job(relay, REQUEST)
    [output] = job.outputs
    assert job.status is JobStatus.PUBLISHED and job.error is None
    assert [c for c in output.checks if not c["ok"]] == [
        {"name": "audio", "ok": False, "expected": True, "actual": False}]


@pytest.mark.parametrize(("kind", "check"), [("duration", "duration"), ("resolution", "resolution")])
def test_strict_checks_fail_a_wrong_video_with_output_mismatch(tmp_path: Path, kind: str, check: str) -> None:
    with sandbox_relay(tmp_path, {"wrong_output_rate": 1.0, "wrong_output": kind},
                       RELAY_OUTPUT_CHECKS="strict") as relay:
        job = run_job(relay, REQUEST)
        [event] = drain_events(relay)
    assert job.status is JobStatus.FAILED and job.outputs == ()
    assert job.error is not None and job.error["code"] == "output_mismatch" and job.error["output"] == 0
    assert check in job.error["message"] and [c["name"] for c in job.error["checks"] if not c["ok"]] == [check]
    assert event["type"] == "io.seedance-relay.job.failed" and event["data"]["outputs"] == []
    jsonschema.validate(event, event_schema(event["type"]))


def test_strict_checks_publish_a_video_that_passes_them(tmp_path: Path) -> None:
    with sandbox_relay(tmp_path, RELAY_OUTPUT_CHECKS="strict") as relay:
        assert run_job(relay, REQUEST).status is JobStatus.PUBLISHED


# --- unplayable results --------------------------------------------------------------------------

@pytest.fixture
def page_server() -> Iterator[MediaServer]:
    """A result host that answers an error page labelled as a video, as a misconfigured CDN does."""
    with MediaServer() as server:
        server.add("/video.mp4", HTML_PAGE, content_type="video/mp4")
        yield server


def test_an_unplayable_result_is_copied_again_then_fails_the_job_and_is_never_published(
        tmp_path: Path, page_server: MediaServer) -> None:
    provider = FakeProvider(results=[page_server.url("/video.mp4")])
    relay = local_relay(tmp_path, provider, EVOLINK_BASE_URL=page_server.url(""))
    try:
        job = run_job(relay, REQUEST, finish=provider.finish, attempts=UNPLAYABLE_ATTEMPTS + 2)
        events = drain_events(relay)
    finally:
        relay.close()
    downloads = [r for r in page_server.requests if r.path == "/video.mp4" and r.method == "GET"]
    assert len(downloads) == UNPLAYABLE_ATTEMPTS
    assert job.status is JobStatus.FAILED and job.outputs == ()
    assert job.error is not None and job.error["code"] == "unplayable_output"
    assert "not a playable MP4" in job.error["message"] and f"{UNPLAYABLE_ATTEMPTS} of" in job.error["message"]
    assert [e["type"] for e in events] == ["io.seedance-relay.job.failed"] and events[0]["data"]["outputs"] == []


def test_a_copy_found_unplayable_is_downloaded_again_and_published_once_it_plays(
        tmp_path: Path, page_server: MediaServer) -> None:
    provider = FakeProvider(results=[page_server.url("/video.mp4")])
    relay = local_relay(tmp_path, provider, EVOLINK_BASE_URL=page_server.url(""))
    try:
        job = run_job(relay, REQUEST, finish=provider.finish, attempts=1)
        note = json.loads(stored_bytes(relay, unplayable_key(job.id, 0)))
        page_server.add("/video.mp4", VIDEO, content_type="video/mp4")  # the CDN recovers
        job = ingest_until_ended(relay, job.id)
    finally:
        relay.close()
    assert note["attempts"] == 1 and "not a playable MP4" in note["reason"]
    assert job.status is JobStatus.PUBLISHED and job.outputs[0].size == len(VIDEO)
    assert job.outputs[0].media is not None and job.outputs[0].media["duration"] == 1.0
