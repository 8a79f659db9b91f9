"""Retention on the local backend: the clean-up pass removes old finished jobs, job files, uploads, queue
messages and events, keeps what is unfinished or recent, counts the same in a dry run, and the SQLite file
gives the space back."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from handlers.adapters.local import SqliteEventLog, SqliteJobStore
from handlers.app.relay import Relay
from handlers.domain.jobs import Job, JobStatus
from handlers.sandbox.media import render_image
from handlers.usecases import ingest, submit
from handlers.usecases.retention import DAY, GarbageReport, Kind, collect_garbage
from handlers.usecases.uploads import store_upload
from tests.support.fakes import Clock, FakeProvider, local_relay
from tests.support.media_server import MediaServer

REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4}
NOW = time.time()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def relay(tmp_path: Path, provider: FakeProvider, media: MediaServer, clock: Clock) -> Iterator[Relay]:
    relay = local_relay(tmp_path, provider, clock, EVOLINK_BASE_URL=media.url(""), RELAY_JOB_RETENTION="90",
                        RELAY_VIDEO_RETENTION="30", RELAY_UPLOAD_URL_TTL="3600", RELAY_UPLOAD_GRACE="3600",
                        RELAY_QUEUE_RETENTION="14")
    yield relay
    relay.close()


def published(relay: Relay, provider: FakeProvider, prompt: str) -> Job:
    """A job run through submit, the provider and ingest to ``published``, with its files under ``jobs/``."""
    job = submit(relay, {**REQUEST, "prompt": prompt})
    provider.finish(job.task_id or "")
    ingest(relay, job.id, worker="test")
    done = relay.jobs.get(job.id)
    assert done.status is JobStatus.PUBLISHED, done
    return done


def files_of(relay: Relay, job_id: str) -> list[Path]:
    folder = relay.settings.data_dir / "blobs" / "jobs" / job_id
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def objects_of(relay: Relay, job_id: str) -> list[Path]:
    """The job's objects (its files but the sidecars the folder store keeps beside them)."""
    return [path for path in files_of(relay, job_id) if not path.name.endswith(".meta.json")]


def age(paths: list[Path], days: float) -> None:
    """Make each file look written ``days`` before :data:`NOW`."""
    for path in paths:
        os.utime(path, (NOW - days * DAY, NOW - days * DAY))


def made_old(relay: Relay, job: Job, days: float) -> None:
    """The job finished ``days`` ago, and its files were written then."""
    then = NOW - days * DAY
    relay.jobs.update(replace(job, created_at=then - 60, updated_at=then, finished_at=then))
    age(files_of(relay, job.id), days)


def upload(relay: Relay, width: int) -> str:
    return store_upload(relay, render_image(width=width, height=64), "image/png", ttl=3600).key


def counts(report: GarbageReport) -> dict[str, int]:
    return {part.kind.value: part.count for part in report.collected if part.skipped is None}


def test_gc_removes_old_finished_jobs_their_files_and_old_uploads_and_keeps_the_rest(
        relay: Relay, provider: FakeProvider) -> None:
    old, recent = published(relay, provider, "old"), published(relay, provider, "recent")
    made_old(relay, old, 100)
    old_objects = objects_of(relay, old.id)
    old_bytes = sum(path.stat().st_size for path in old_objects)
    running = relay.jobs.create(Job(id="job_running", request=REQUEST, fingerprint="f" * 64,
                                    created_at=NOW - 100 * DAY, updated_at=NOW - 100 * DAY,
                                    status=JobStatus.PROCESSING, check_at=NOW))
    stale, fresh = upload(relay, 64), upload(relay, 96)
    age([relay.settings.data_dir / "blobs" / stale], 1)
    report = collect_garbage(relay, now=NOW)
    assert counts(report) == {"jobs": 1, "videos": len(old_objects), "uploads": 1, "messages": 0}
    assert relay.jobs.existing([old.id, recent.id, running.id]) == {recent.id, running.id}
    assert files_of(relay, old.id) == [] and not (relay.settings.data_dir / "blobs" / "jobs" / old.id).exists()
    assert files_of(relay, recent.id) != []
    assert relay.blobs.head(stale) is None and relay.blobs.head(fresh) is not None
    assert next(part.bytes for part in report.collected if part.kind is Kind.VIDEOS) == old_bytes


def test_videos_are_kept_forever_unless_a_retention_is_set(tmp_path: Path, provider: FakeProvider,
                                                           media: MediaServer, clock: Clock) -> None:
    relay = local_relay(tmp_path, provider, clock, EVOLINK_BASE_URL=media.url(""))
    try:
        job = published(relay, provider, "kept")
        made_old(relay, job, 3000)
        report = collect_garbage(relay, now=NOW)
        assert files_of(relay, job.id) != []
        assert next(part.skipped for part in report.collected if part.kind is Kind.VIDEOS) == "kept forever"
    finally:
        relay.close()


def test_a_dry_run_reports_what_the_real_run_removes_and_removes_nothing(relay: Relay,
                                                                           provider: FakeProvider) -> None:
    old = published(relay, provider, "old")
    made_old(relay, old, 100)
    age([relay.settings.data_dir / "blobs" / upload(relay, 64)], 1)
    before = sorted(path for path in (relay.settings.data_dir / "blobs").rglob("*"))
    dry = collect_garbage(relay, now=NOW, dry_run=True)
    assert sorted(path for path in (relay.settings.data_dir / "blobs").rglob("*")) == before
    assert relay.jobs.existing([old.id]) == {old.id}
    real = collect_garbage(relay, now=NOW)
    assert dry.dry_run and not real.dry_run
    mine = (Kind.JOBS, Kind.VIDEOS, Kind.UPLOADS, Kind.MESSAGES)
    assert [p for p in dry.collected if p.kind in mine] == [p for p in real.collected if p.kind in mine]
    assert dry.count > 0 and dry.reclaimed == 0


def test_the_sqlite_file_shrinks_after_gc_of_many_finished_jobs(relay: Relay) -> None:
    database = relay.settings.data_dir / "relay.sqlite3"
    padding = {"note": "x" * 2000}
    for n in range(2000):
        relay.jobs.create(Job(id=f"job_{n:05d}", request=REQUEST, fingerprint="f" * 64, metadata=padding,
                              created_at=NOW - 200 * DAY, updated_at=NOW - 100 * DAY, finished_at=NOW - 100 * DAY,
                              status=JobStatus.PUBLISHED))
    grown = file_size(database)
    report = collect_garbage(relay, now=NOW)
    assert counts(report)["jobs"] == 2000
    assert file_size(database) < grown / 4
    assert report.reclaimed > grown / 2


def file_size(database: Path) -> int:
    return sum(path.stat().st_size for path in (database, Path(f"{database}-wal")) if path.exists())


def test_a_file_made_without_incremental_vacuum_is_switched_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE other (x)")
    db.close()
    store = SqliteJobStore(path)
    assert store.due(NOW) == []  # the first use opens the file
    store.close()
    with sqlite3.connect(path) as db:
        (mode,) = db.execute("PRAGMA auto_vacuum").fetchone()
    db.close()
    assert mode == 2  # INCREMENTAL


def test_an_acknowledged_subscriber_copy_is_deleted_and_an_unread_one_expires(relay: Relay, clock: Clock) -> None:
    queue = relay.bus.subscriber("default")
    relay.bus.publish({"specversion": "1.0", "id": "ev-read", "type": "io.seedance-relay.job.completed",
                       "source": "tests", "subject": "job_a"})
    clock.advance(-20 * DAY)
    relay.bus.publish({"specversion": "1.0", "id": "ev-unread", "type": "io.seedance-relay.job.completed",
                       "source": "tests", "subject": "job_b"})
    clock.advance(20 * DAY)
    for message in queue.receive(max_messages=10):
        if message.body["id"] == "ev-read":
            queue.ack(message)
    with sqlite3.connect(relay.settings.data_dir / "relay.sqlite3") as db:
        kept = [row[0] for row in db.execute("SELECT json_extract(body, '$.id') FROM messages")]
    db.close()
    assert kept == ["ev-unread"]
    assert counts(collect_garbage(relay, now=NOW))["messages"] == 1
    assert queue.depth() == {"visible": 0, "in_flight": 0, "dead": 0}


def test_events_older_than_their_retention_are_purged_from_the_local_log(relay: Relay, clock: Clock) -> None:
    clock.advance(-40 * DAY)
    relay.bus.publish({"specversion": "1.0", "id": "ev-old", "type": "io.seedance-relay.job.completed",
                       "source": "tests", "subject": "job_a"})
    clock.advance(40 * DAY)
    relay.bus.publish({"specversion": "1.0", "id": "ev-new", "type": "io.seedance-relay.job.completed",
                       "source": "tests", "subject": "job_b"})
    log = SqliteEventLog(relay.settings.data_dir / "relay.sqlite3", clock=clock)
    try:
        report = collect_garbage(relay, now=NOW, event_log=log)
    finally:
        log.close()
    assert next(part.count for part in report.collected if part.kind is Kind.EVENTS) == 1
    assert [event["id"] for _, event in relay.bus.events()] == ["ev-new"]  # type: ignore[attr-defined]
