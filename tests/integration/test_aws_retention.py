"""The clean-up pass on the AWS backend (DynamoDB, S3 and SQS on moto): what the scheduled pass of the reconcile
function removes (finished jobs the table's TTL left two days past their retention), and a full pass by hand."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from handlers.adapters.aws import AwsClients, AwsNames
from handlers.adapters.aws.bootstrap import bootstrap
from handlers.app.relay import Relay
from handlers.app.settings import Settings
from handlers.app.wiring import build_relay
from handlers.domain.jobs import Job, JobStatus
from handlers.lambdas.reconcile import TTL_LAG
from handlers.usecases.retention import DAY, Kind, collect_garbage
from tests.support.fakes import FakeProvider

pytestmark = pytest.mark.integration
NOW = time.time()


@pytest.fixture
def relay(clients: AwsClients, names: AwsNames, moto_server: str) -> Iterator[Relay]:
    bootstrap(clients, names, {"default": ["*"]})
    settings = Settings.from_env({
        "RELAY_BACKEND": "aws", "AWS_ENDPOINT_URL": moto_server, "RELAY_TABLE": names.table,
        "RELAY_BUCKET": names.bucket, "RELAY_INGEST_QUEUE": names.ingest_queue, "RELAY_TOPIC": names.topic,
        "RELAY_REQUESTS_QUEUE": names.requests_queue, "RELAY_SUBSCRIBER_QUEUE_PREFIX": names.subscriber_prefix,
        "RELAY_SUBSCRIBERS": "default:*", "RELAY_JOB_RETENTION": "90", "RELAY_VIDEO_RETENTION": "30"})
    relay = build_relay(settings, provider=FakeProvider())
    yield relay
    relay.close()


def finished(job_id: str, days_ago: float) -> Job:
    at = NOW - days_ago * DAY
    return Job(id=job_id, request={"prompt": "a cat"}, fingerprint="f" * 64, created_at=at - 60, updated_at=at,
               finished_at=at, status=JobStatus.FAILED)


def test_the_scheduled_pass_takes_only_the_jobs_the_ttl_left_two_days_past_their_retention(relay: Relay) -> None:
    for job in (finished("job_forgotten", 100), finished("job_due_for_ttl", 91), finished("job_recent", 1)):
        relay.jobs.create(job)
    relay.jobs.create(Job(id="job_running", request={"prompt": "a dog"}, fingerprint="f" * 64,
                          created_at=NOW - 200 * DAY, updated_at=NOW, status=JobStatus.PROCESSING, check_at=NOW))
    report = collect_garbage(relay, now=NOW, kinds=(Kind.JOBS,), lag=TTL_LAG)
    assert report.count == 1
    assert relay.jobs.existing(["job_forgotten", "job_due_for_ttl", "job_recent", "job_running"]) == {
        "job_due_for_ttl", "job_recent", "job_running"}
    assert {part.kind: part.skipped for part in report.collected}[Kind.VIDEOS] == "not asked for"


def test_a_pass_by_hand_lists_and_deletes_old_files_in_the_bucket(relay: Relay) -> None:
    relay.blobs.put_stream("jobs/job_a/output-0.mp4", [b"v" * 1000], content_type="video/mp4")
    relay.blobs.put_stream("uploads/default/a.png", [b"p" * 10], content_type="image/png")
    later = NOW + 31 * DAY  # a month on, the file is past the 30-day video retention and the upload past a day
    dry = collect_garbage(relay, now=later, dry_run=True)
    report = collect_garbage(relay, now=later)
    counts = {part.kind: (part.count, part.bytes) for part in report.collected}
    assert counts[Kind.VIDEOS] == (1, 1000) and counts[Kind.UPLOADS] == (1, 10) and counts[Kind.MESSAGES] == (0, 0)
    assert [p for p in dry.collected if p.kind is not Kind.EVENTS] == \
        [p for p in report.collected if p.kind is not Kind.EVENTS]
    assert relay.blobs.head("jobs/job_a/output-0.mp4") is None and relay.blobs.head("uploads/default/a.png") is None
