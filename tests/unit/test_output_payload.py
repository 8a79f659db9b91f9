"""An output's media facts, checks and pictures: in the job record, the API's view and the completed event."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import jsonschema
import pytest

from handlers.domain.events import FRAME_URL_SECONDS, build_event
from handlers.domain.jobs import Job, JobStatus, Outcome, Output, rfc3339
from handlers.media.frames import FRAME_ROLES
from handlers.tooling.event_schemas import event_schema

JOB_ID = "job_" + "a" * 26
NOW = 1_800_000_000.0
PLAIN = Output(uri=f"s3://videos/jobs/{JOB_ID}/output-0.mp4", key=f"jobs/{JOB_ID}/output-0.mp4", size=1000,
               sha256="b" * 64)
DESCRIBED = replace(
    PLAIN,
    media={"duration": 4.0, "width": 864, "height": 496, "fps": 24.0, "frames": 96, "video_codec": "h264",
           "has_audio": True, "audio_codec": "aac", "bitrate": 2000, "size": 1000},
    checks=({"name": "duration", "ok": True, "expected": 4, "actual": 4.0},
            {"name": "audio", "ok": False, "expected": True, "actual": False}),
    frames={role: f"s3://videos/jobs/{JOB_ID}/output-0.{role}.jpg" for role in FRAME_ROLES})


def completed(*outputs: Output) -> Job:
    return Job(id=JOB_ID, request={"model": "seedance-2.0-text-to-video", "prompt": "p", "duration": 4},
               fingerprint="f", created_at=NOW - 60, updated_at=NOW, status=JobStatus.STORED, task_id="task-1",
               model="seedance-2.0-text-to-video", outcome=Outcome.COMPLETED, finished_at=NOW, outputs=outputs)


def signer(key: str, expires_in: int) -> str:
    return f"https://videos.s3.example/{key}?X-Amz-Expires={expires_in}"


def test_a_described_output_survives_the_job_record() -> None:
    job = completed(DESCRIBED)
    assert Job.from_record(job.to_record()).outputs == (DESCRIBED,)


def test_a_record_written_before_outputs_were_described_still_reads() -> None:
    record = completed(PLAIN).to_record()
    for field in ("media", "checks", "frames"):
        del record["outputs"][0][field]
    [output] = Job.from_record(record).outputs
    assert (output.media, output.checks, output.frames) == (None, (), {})


def test_pictures_are_kept_beside_their_video() -> None:
    assert DESCRIBED.frame_key("poster") == f"jobs/{JOB_ID}/output-0.poster.jpg"
    assert DESCRIBED.frame_key("last-frame-thumbnail") == f"jobs/{JOB_ID}/output-0.last-frame-thumbnail.jpg"


def test_the_api_view_gives_each_picture_its_route() -> None:
    shown = DESCRIBED.public(JOB_ID, 0)
    assert shown["url"] == f"/v1/jobs/{JOB_ID}/outputs/0"
    assert shown["frame_urls"] == {role: f"/v1/jobs/{JOB_ID}/outputs/0/{role}" for role in FRAME_ROLES}
    assert PLAIN.public(JOB_ID, 0)["frame_urls"] == {}


def test_the_event_carries_presigned_urls_where_the_store_makes_them() -> None:
    [sent] = build_event(completed(DESCRIBED), now=NOW, presign=signer)["data"]["outputs"]
    assert sent["frame_urls"] == {role: signer(DESCRIBED.frame_key(role), FRAME_URL_SECONDS) for role in FRAME_ROLES}
    assert sent["frame_urls_expire_at"] == rfc3339(NOW + FRAME_URL_SECONDS)
    assert (sent["media"], sent["checks"], sent["frames"]) == (DESCRIBED.media, list(DESCRIBED.checks),
                                                               DESCRIBED.frames)


@pytest.mark.parametrize("presign", [None, lambda key, expires_in: None], ids=["no-signer", "folder"])
def test_without_presigned_urls_the_event_names_the_pictures_by_uri(presign: Any) -> None:
    [sent] = build_event(completed(DESCRIBED), now=NOW, presign=presign)["data"]["outputs"]
    assert "frame_urls" not in sent and "frame_urls_expire_at" not in sent and sent["frames"] == DESCRIBED.frames


@pytest.mark.parametrize("output", [DESCRIBED, PLAIN], ids=["described", "not-read"])
def test_the_completed_event_matches_its_schema(output: Output) -> None:
    event = build_event(completed(output), now=NOW, presign=signer)
    jsonschema.validate(event, event_schema(event["type"]))


def test_the_schema_refuses_a_picture_of_no_known_role() -> None:
    event = build_event(completed(replace(DESCRIBED, frames={"cover": "s3://videos/x.jpg"})), now=NOW)
    with pytest.raises(jsonschema.ValidationError, match="cover"):
        jsonschema.validate(event, event_schema(event["type"]))
