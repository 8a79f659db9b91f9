"""The soak's view of the relay's storage, beside the relay: events drained, sizes sampled, clean-up passes.

:class:`Storage` opens the same storage the relay uses (``build_ports`` on the relay's settings: the
SQLite file and folder, or the resources on moto), as ``seedance-relay dlq`` and ``gc`` do. A
:class:`Monitor` thread drains the ``audit`` subscriber every second, samples every
``sample_every`` seconds and runs the emulated-retention clean-up pass every ``gc_every`` seconds.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._soak_report import TERMINAL_TYPES, Observed, Sample
from handlers.app.settings import Settings
from handlers.app.wiring import build_event_log, build_ports
from handlers.domain.jobs import TERMINAL
from handlers.ports import BlobStore, EventBus, JobStore, WorkQueue
from handlers.usecases.retention import DAY, Kind, collect_garbage

__all__ = ["Monitor", "Storage"]

RETAINED_KINDS = (Kind.JOBS, Kind.VIDEOS, Kind.UPLOADS, Kind.EVENTS)  # never queue messages


@dataclass
class _Stores:
    """What a clean-up pass needs (``handlers.usecases.retention.Stores``)."""

    settings: Settings
    jobs: JobStore
    blobs: BlobStore
    ingest_queue: WorkQueue
    bus: EventBus


class Storage:
    def __init__(self, data_dir: Path, env: dict[str, str], *, retention: float) -> None:
        self.data_dir, self.retention = data_dir, retention
        self.settings = Settings.from_env(env)
        jobs, blobs, ingest, bus, self._closers = build_ports(self.settings)
        self.stores = _Stores(self.settings, jobs, blobs, ingest, bus)
        self.event_log, close_log = build_event_log(self.settings)
        self._closers.append(close_log)
        self.audit = bus.subscriber("audit")
        self._s3: Any = None
        if self.settings.backend == "aws":
            import boto3

            self._s3 = boto3.client("s3", endpoint_url=self.settings.aws_endpoint_url)

    def close(self) -> None:
        for close in self._closers:
            close()

    def drain(self) -> list[dict[str, Any]]:
        """Every event message waiting for the audit subscriber, acknowledged."""
        events: list[dict[str, Any]] = []
        while messages := self.audit.receive(max_messages=10):
            for message in messages:
                events.append(dict(message.body))
                self.audit.ack(message)
        return events

    def stored_size(self, key: str) -> int | None:
        found = self.stores.blobs.head(key)
        return None if found is None else found.size

    def measure(self) -> tuple[int, dict[str, int]]:
        """The storage's size in bytes, and every video under ``jobs/`` with its size."""
        total, videos = 0, {}
        blobs = self.data_dir / "blobs"
        for folder, _, files in os.walk(self.data_dir):
            for name in files:
                path = Path(folder) / name
                try:
                    size = path.stat().st_size
                except FileNotFoundError:  # removed while walking
                    continue
                total += size
                if name.endswith(".mp4") and path.is_relative_to(blobs / "jobs"):
                    videos[path.relative_to(blobs).as_posix()] = size
        if self._s3 is not None:
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.settings.aws_bucket)
            for page in pages:
                for item in page.get("Contents", []):
                    total += int(item["Size"])
                    if item["Key"].startswith("jobs/") and item["Key"].endswith(".mp4"):
                        videos[item["Key"]] = int(item["Size"])
        return total, videos

    def collect(self) -> dict[str, Any]:
        """One clean-up pass as the relay runs it, its clock moved so that the shortest retention the
        settings take (a day) reaches back only ``retention`` seconds."""
        shifted = time.time() + self.settings.job_retention * DAY - self.retention
        report = collect_garbage(self.stores, now=shifted, kinds=RETAINED_KINDS, event_log=self.event_log)
        kinds = {part.kind.value: part.count for part in report.collected if part.skipped is None}
        return {"removed": report.count, "kinds": kinds, "reclaimed_bytes": report.reclaimed}

    def dead_letters(self) -> dict[str, int]:
        return {"ingest": self.stores.ingest_queue.depth()["dead"], "audit": self.audit.depth()["dead"]}

    def dead_letter_jobs(self) -> list[str]:
        """The job of each ingest message that was dead-lettered."""
        return [str(m.body.get("job_id")) for m in self.stores.ingest_queue.dead_letters(limit=1000)]

    def unfinished(self, job_ids: Collection[str]) -> dict[str, str]:
        """Job records still kept that are not final, with their status (a purged record was final)."""
        jobs = self.stores.jobs
        kept = [jobs.get(job_id) for job_id in sorted(jobs.existing(job_ids))]
        return {job.id: job.status.value for job in kept if job.status not in TERMINAL}


class Monitor(threading.Thread):
    def __init__(self, storage: Storage, observed: Observed, *, relay_pid: Callable[[], int | None],
                 sample_every: float, gc_every: float) -> None:
        super().__init__(name="monitor", daemon=True)
        self.storage, self.observed, self.relay_pid = storage, observed, relay_pid
        self.sample_every, self.gc_every = sample_every, gc_every
        self.ended: set[str] = set()
        self._done = threading.Event()

    def stop(self) -> None:
        """Stop, then drain and sample once more (once: later calls do nothing)."""
        if self._done.is_set():
            return
        self._done.set()
        self.join(timeout=120)
        self._guarded(self._drain)
        self._guarded(self._sample)

    def run(self) -> None:
        next_sample = next_gc = time.monotonic()
        if self.gc_every:
            next_gc += self.gc_every
        while not self._done.wait(1.0):
            self._guarded(self._drain)
            if time.monotonic() >= next_sample:
                next_sample += self.sample_every
                self._guarded(self._sample)
            if self.gc_every and time.monotonic() >= next_gc:
                next_gc += self.gc_every
                self._guarded(self._collect)

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - a failed look is counted and tried again next time
            self.observed.monitor_errors += 1
            print(f"[soak] monitor: {step.__name__} failed: {exc!r}", file=sys.stderr, flush=True)

    def _drain(self) -> None:
        for event in self.storage.drain():
            self.observed.deliveries.append(event)
            kind = str(event.get("type", "")).rsplit(".", 1)[-1]
            if kind in TERMINAL_TYPES:
                self.ended.add(str(event.get("subject")))
            if kind == "completed":
                for output in event.get("data", {}).get("outputs", []):
                    size = self.storage.stored_size(output["key"])
                    if size is not None:
                        self.observed.seen_videos[output["key"]] = size

    def _sample(self) -> None:
        total, videos = self.storage.measure()
        self.observed.seen_videos.update(videos)
        pid = self.relay_pid()
        at = time.time() - self.observed.started
        self.observed.samples.append(Sample(at=at, pid=pid, rss=_rss(pid), storage=total, ended=len(self.ended)))
        if len(self.observed.samples) % max(1, int(60 / self.sample_every)) == 0:
            print(f"[soak] {at / 60:5.1f} min: submitted {len(self.observed.submitted)}, ended {len(self.ended)}, "
                  f"storage {total / 2**20:.1f} MiB, RSS {(_rss(pid) or 0) / 2**20:.1f} MiB", file=sys.stderr,
                  flush=True)

    def _collect(self) -> None:
        outcome = self.storage.collect()
        self.observed.gc_passes.append({"at": time.time() - self.observed.started, **outcome})


def _rss(pid: int | None) -> int | None:
    """The relay's resident set in bytes with its child processes' (the media readers of
    ``RELAY_MEDIA_PROCESSES``), from ``/proc``; None if it is gone."""
    own = _own_rss(pid)
    if own is None or pid is None:
        return own
    return own + sum(_own_rss(child) or 0 for child in _children(pid))


def _own_rss(pid: int | None) -> int | None:
    """One process's resident set in bytes (None if it is gone)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _children(pid: int) -> list[int]:
    """The process ids of ``pid``'s children, from each of its threads' ``children`` list."""
    found: list[int] = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(child) for child in listing.read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found
