"""Jobs run to their end through the use cases, for the tests of what the relay reads of its outputs."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from PIL import Image

from handlers.app.relay import Relay
from handlers.base.errors import DownloadFailed
from handlers.domain.jobs import Job
from handlers.usecases import ingest, submit
from tests.support.servers import wait_until

__all__ = ["drain_events", "ingest_until_ended", "picture_size", "run_job", "stored_bytes"]


def run_job(relay: Relay, request: dict[str, Any], *, finish: Callable[[str], None] | None = None,
            attempts: int = 5, timeout: float = 30.0) -> Job:
    """Submit ``request``, wait for the provider to end its task (``finish`` ends it, for a fake provider), then
    :func:`ingest_until_ended`."""
    job = submit(relay, request)
    assert job.task_id is not None, job
    if finish is not None:
        finish(job.task_id)
    wait_until(lambda: relay.provider.get_task(job.task_id or "").is_final, timeout, f"task {job.task_id}")
    return ingest_until_ended(relay, job.id, attempts)


def ingest_until_ended(relay: Relay, job_id: str, attempts: int = 5) -> Job:
    """Ingest the job up to ``attempts`` times, until it has ended; a failed copy (``DownloadFailed`` raised) is
    ingested again, as the queue would redeliver its message. The job as it then is."""
    for _ in range(attempts):
        try:
            job = ingest(relay, job_id, worker="test")
        except DownloadFailed:
            continue
        if job.terminal:
            return job
    return relay.jobs.get(job_id)


def drain_events(relay: Relay, subscriber: str = "default") -> list[dict[str, Any]]:
    """Every event waiting for ``subscriber``, acknowledged."""
    queue = relay.bus.subscriber(subscriber)
    events: list[dict[str, Any]] = []
    while messages := queue.receive(max_messages=10):
        for message in messages:
            body = dict(message.body)
            events.append(json.loads(body["Message"]) if "Message" in body else body)
            queue.ack(message)
    return events


def stored_bytes(relay: Relay, key: str) -> bytes:
    return b"".join(relay.blobs.read(key))


def picture_size(data: bytes) -> tuple[int, int]:
    """The size of a JPEG picture (it must be one)."""
    with Image.open(io.BytesIO(data)) as picture:
        assert picture.format == "JPEG"
        return picture.size
