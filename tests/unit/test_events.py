"""CloudEvents for job outcomes: valid, deterministic ids, filterable types."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime

import jsonschema
import pytest

from handlers.domain.events import EVENT_TYPES, OUTCOME_TYPES, build_at_risk_event, build_event, event_id
from handlers.domain.jobs import Job, JobStatus, Outcome, Output, derive_job_id, request_fingerprint, rfc3339
from handlers.tooling.event_schemas import TIME_PATTERN
from tests.conftest import load_fixture

JOB = Job(id="job_1", request={"model": "seedance-2.0-text-to-video", "prompt": "x", "duration": 6},
          fingerprint="f", created_at=1_800_000_000.0, updated_at=1_800_000_000.0, status=JobStatus.STORED,
          task_id="task-unified-1-abcdefgh", model="seedance-2.0-text-to-video", outcome=Outcome.COMPLETED,
          metadata={"customer": 7}, finished_at=1_800_000_100.0,
          outputs=(Output(uri="s3://b/k.mp4", key="k.mp4", size=10, sha256="ab" * 32),))


def test_the_event_validates_against_the_cloudevents_schema() -> None:
    event = build_event(JOB, now=1_800_000_101.0)
    jsonschema.validate(event, load_fixture("cloudevents/cloudevents-1.0.schema.json"))
    assert event["type"] == "io.seedance-relay.job.completed" and event["subject"] == "job_1"
    assert event["time"] == "2027-01-15T08:01:41.000000Z"


def test_the_data_carries_outputs_metadata_and_duration() -> None:
    data = build_event(JOB, now=0)["data"]
    assert data["outputs"][0]["uri"] == "s3://b/k.mp4" and data["metadata"] == {"customer": 7}
    assert (data["job_id"], data["task_id"], data["duration"]) == ("job_1", "task-unified-1-abcdefgh", 6)


def test_ids_depend_on_job_and_outcome_only() -> None:
    assert build_event(JOB, now=1)["id"] == build_event(JOB, now=2)["id"] == event_id("job_1", "completed")
    assert event_id("job_1", "failed") != event_id("job_1", "completed")


def test_a_job_without_outcome_has_no_event() -> None:
    with pytest.raises(ValueError, match="no outcome"):
        build_event(Job(id="j", request={}, fingerprint="f", created_at=0, updated_at=0), now=0)


def test_there_is_one_terminal_type_per_outcome_one_at_risk_type_and_the_storyboard_types() -> None:
    assert {t.rsplit(".", 1)[1] for t in OUTCOME_TYPES} == {"completed", "failed", "cancelled", "expired", "rejected"}
    assert set(EVENT_TYPES) == {*OUTCOME_TYPES, "io.seedance-relay.job.at_risk",
                                "io.seedance-relay.storyboard.completed", "io.seedance-relay.storyboard.failed"}


def test_a_terminal_event_carries_every_attempt_oldest_first() -> None:
    failed = {"task_id": "task-unified-1-old", "code": "service_error", "message": "m", "failed_at": rfc3339(5.0)}
    data = build_event(replace(JOB, failed_tasks=(failed,)), now=0)["data"]
    assert data["attempts"] == [failed, {"task_id": "task-unified-1-abcdefgh"}]


def test_the_at_risk_event_has_its_own_deterministic_id_and_the_url_expiry() -> None:
    job = replace(JOB, status=JobStatus.PROCESSING, outcome=None, outputs=(), result_seen_at=1_800_000_050.0)
    event = build_at_risk_event(job, now=1_800_072_050.0, expires_at=1_800_086_450.0)
    assert event["id"] == event_id("job_1", "at_risk") != event_id("job_1", "completed")
    assert event["type"] == "io.seedance-relay.job.at_risk"
    assert event["data"]["expires_at"] == rfc3339(1_800_086_450.0)
    jsonschema.validate(event, load_fixture("cloudevents/cloudevents-1.0.schema.json"))


def test_a_job_that_never_read_its_task_completed_has_no_at_risk_event() -> None:
    with pytest.raises(ValueError, match="no completed task"):
        build_at_risk_event(replace(JOB, result_seen_at=None), now=0, expires_at=0)


def test_job_ids_repeat_for_the_same_key_or_request_and_differ_per_caller() -> None:
    fingerprint = request_fingerprint({"a": 1, "b": 2}, {})
    assert fingerprint == request_fingerprint({"b": 2, "a": 1}, {})
    assert derive_job_id("s", "key", fingerprint) == derive_job_id("s", "key", "other")
    assert derive_job_id("s", None, fingerprint) != derive_job_id("t", None, fingerprint)


def test_jobs_round_trip_through_records() -> None:
    assert Job.from_record(JOB.to_record()) == JOB


@pytest.mark.parametrize(("timestamp", "text"), [(1_800_000_101.0, "2027-01-15T08:01:41.000000Z"),
                                                 (1_800_000_101.25, "2027-01-15T08:01:41.250000Z"),
                                                 (0.0, "1970-01-01T00:00:00.000000Z")])
def test_times_are_rfc3339_utc_with_z_and_six_fraction_digits(timestamp: float, text: str) -> None:
    assert rfc3339(timestamp) == text and re.fullmatch(TIME_PATTERN, text)
    assert datetime.fromisoformat(text).timestamp() == timestamp


def test_the_job_view_and_its_event_write_every_time_the_same_way() -> None:
    public, data = JOB.public(), build_event(JOB, now=1_800_000_101.0)["data"]
    assert (public["created_at"], public["finished_at"]) == (data["created_at"], data["finished_at"])
    times = [public[name] for name in ("created_at", "updated_at", "finished_at")]
    assert all(re.fullmatch(TIME_PATTERN, t) for t in times) and public["submitted_at"] is None


def test_the_job_view_gives_each_output_its_route_beside_its_storage_uri() -> None:
    [output] = JOB.public()["outputs"]
    assert (output["url"], output["uri"]) == ("/v1/jobs/job_1/outputs/0", "s3://b/k.mp4")
