"""``seedance-relay gc`` as a real process, on the local backend and on DynamoDB and S3 under moto: the table of
what went, a dry run that removes nothing, JSON, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from handlers.adapters.aws import AwsNames, aws_clients
from handlers.adapters.aws.blobs import S3BlobStore
from handlers.adapters.aws.bootstrap import bootstrap
from handlers.adapters.aws.jobs import DynamoJobStore
from handlers.adapters.local import FolderBlobStore, SqliteJobStore
from handlers.domain.jobs import Job, JobStatus
from handlers.ports import BlobStore, JobStore

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).with_name("seedance-relay"))
DAY = 86_400.0


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "EVOLINK_", "SANDBOX_", "AWS_"))}
    return subprocess.run([EXE, "gc", *args], env={**clean, **env}, capture_output=True, text=True, timeout=120)


def ok(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = run(*args, env=env)
    assert done.returncode == 0, done.stderr
    return done


def table(output: str) -> dict[str, list[str]]:
    """The report's rows by kind: the count, the bytes and the cut-off (or why it was skipped)."""
    rows = {}
    for line in output.splitlines()[1:]:
        kind, *rest = line.split(maxsplit=1)
        if kind in {"jobs", "videos", "uploads", "messages", "events"}:
            count, size = rest[0].split()[0], rest[0].split()[1:3]
            rows[kind] = [count, " ".join(size) if size[0] != "-" else "-"]
    return rows


def finished(job_id: str, days_ago: float) -> Job:
    at = time.time() - days_ago * DAY
    return Job(id=job_id, request={"prompt": "a cat"}, fingerprint="f" * 64, created_at=at - 60, updated_at=at,
               finished_at=at, status=JobStatus.PUBLISHED)


def fill(jobs: JobStore, blobs: BlobStore) -> None:
    """Two jobs past a 90-day retention, one recent, and one file under jobs/ (kept: no video retention)."""
    for job in (finished("job_old_1", 100), finished("job_old_2", 95), finished("job_recent", 1)):
        jobs.create(job)
    blobs.put_stream("jobs/job_recent/output-0.mp4", [b"v" * 100], content_type="video/mp4")


@pytest.fixture
def local(tmp_path: Path) -> dict[str, str]:
    data = tmp_path / "data"
    jobs = SqliteJobStore(data / "relay.sqlite3")
    fill(jobs, FolderBlobStore(data / "blobs"))
    jobs.close()
    return {"RELAY_DATA_DIR": str(data)}


def remaining(env: dict[str, str]) -> set[str]:
    jobs = SqliteJobStore(Path(env["RELAY_DATA_DIR"]) / "relay.sqlite3")
    try:
        return jobs.existing(["job_old_1", "job_old_2", "job_recent"])
    finally:
        jobs.close()


def test_gc_prints_what_it_removed_by_kind(local: dict[str, str]) -> None:
    done = ok(env=local)
    rows = table(done.stdout)
    assert done.stdout.splitlines()[0].split() == ["KIND", "REMOVED", "BYTES", "OLDER", "THAN", "(UTC)"]
    assert rows["jobs"][0] == "2" and rows["jobs"][1].endswith(("B", "KiB"))
    assert rows["videos"] == ["-", "-"] and "kept forever" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("database space given back: ")
    assert remaining(local) == {"job_recent"}


def test_a_dry_run_prints_the_same_counts_and_removes_nothing(local: dict[str, str]) -> None:
    dry = ok("--dry-run", env=local)
    assert remaining(local) == {"job_old_1", "job_old_2", "job_recent"}
    assert dry.stdout.splitlines()[0].split()[1:3] == ["WOULD", "REMOVE"]
    assert dry.stdout.splitlines()[-1] == "dry run: nothing was removed"
    real = ok(env=local)
    assert {k: v for k, v in table(dry.stdout).items() if k != "events"} == \
        {k: v for k, v in table(real.stdout).items() if k != "events"}


def test_json_and_a_video_retention_remove_the_old_files(local: dict[str, str]) -> None:
    done = ok("--json", env={**local, "RELAY_VIDEO_RETENTION": "1"})
    report = json.loads(done.stdout)
    kinds = {part["kind"]: part for part in report["kinds"]}
    assert (report["dry_run"], kinds["jobs"]["count"], kinds["videos"]["count"]) == (False, 2, 0)
    assert kinds["videos"]["before"] == pytest.approx(report["now"] - DAY)


def test_a_missing_data_dir_is_one_line(tmp_path: Path) -> None:
    done = run(env={"RELAY_DATA_DIR": str(tmp_path / "nothing")})
    assert done.returncode == 1
    says = f"Error: no relay data at {tmp_path / 'nothing'} (RELAY_DATA_DIR); nothing to clean up"
    assert done.stderr.strip() == says
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("RELAY_JOB_RETENTION", "0", "RELAY_JOB_RETENTION=0 is out of range: expected a number of days above 0, "
                                 "at most 36500"),
    ("RELAY_VIDEO_RETENTION", "soon", "RELAY_VIDEO_RETENTION='soon' is not valid: expected a number"),
    ("RELAY_UPLOAD_GRACE", "-1", "RELAY_UPLOAD_GRACE=-1 is out of range: expected at least 0"),
])
def test_a_bad_retention_setting_is_one_line_naming_it(local: dict[str, str], variable: str, value: str,
                                                        says: str) -> None:
    done = run(env={**local, variable: value})
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {says}" and "Traceback" not in done.stderr
    assert remaining(local) == {"job_old_1", "job_old_2", "job_recent"}


def test_a_bad_flag_is_a_usage_error(local: dict[str, str]) -> None:
    done = run("--limit", "0", env=local)
    assert done.returncode == 2 and "Invalid value for '--limit'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.integration
def test_on_aws_gc_removes_old_jobs_from_the_table_and_old_files_from_the_bucket(moto_server: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    names = AwsNames(table=f"gc-{suffix}", bucket=f"gc-{suffix}", ingest_queue=f"gc-i-{suffix}",
                     requests_queue=f"gc-r-{suffix}", topic=f"gc-e-{suffix}", subscriber_prefix=f"gc-s-{suffix}-")
    clients = aws_clients(names, endpoint_url=moto_server)
    bootstrap(clients, names, {"default": ["*"]})
    jobs, blobs = DynamoJobStore(clients.dynamodb, names.table), S3BlobStore(clients.s3, names.bucket)
    fill(jobs, blobs)
    env = {"RELAY_BACKEND": "aws", "AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "RELAY_TABLE": names.table, "RELAY_BUCKET": names.bucket,
           "RELAY_INGEST_QUEUE": names.ingest_queue, "RELAY_REQUESTS_QUEUE": names.requests_queue,
           "RELAY_TOPIC": names.topic, "RELAY_SUBSCRIBER_QUEUE_PREFIX": names.subscriber_prefix,
           "RELAY_SUBSCRIBERS": "default:*", "RELAY_CALLBACK_SECRET": "k1:" + "s" * 32}
    dry = ok("--dry-run", "--json", env={**env, "RELAY_VIDEO_RETENTION": "1"})
    assert jobs.existing(["job_old_1", "job_old_2", "job_recent"]) == {"job_old_1", "job_old_2", "job_recent"}
    report = json.loads(ok("--json", env=env).stdout)
    assert {part["kind"]: part["count"] for part in json.loads(dry.stdout)["kinds"]}["jobs"] == 2
    assert {part["kind"]: part["count"] for part in report["kinds"]}["jobs"] == 2
    assert jobs.existing(["job_old_1", "job_old_2", "job_recent"]) == {"job_recent"}
    assert blobs.head("jobs/job_recent/output-0.mp4") is not None
