"""Copy a completed task's results into the blob store under the job's lease.

A lease (a conditional write on the job) lets one worker copy at a time; a long copy renews it. Object
keys are deterministic, so a copy that stopped half way is simply done again, and a copy already stored is
kept, unless it was found unplayable (:func:`note_unplayable`): then it is downloaded again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from handlers.app.relay import Relay
from handlers.base.errors import Conflict, DownloadFailed, NotFound, RelayError
from handlers.base.logs import get_logger
from handlers.domain.jobs import Job, Output

__all__ = [
    "Busy",
    "LeaseKeeper",
    "copy_results",
    "failed_copy",
    "note_unplayable",
    "owned_update",
    "release_lease",
    "take_lease",
    "under_lease",
    "unplayable_key",
]

log = get_logger(__name__)
_T = TypeVar("_T")


class Busy(RelayError):
    """Another worker holds the job's lease; try again after ``delay`` seconds."""

    code = "busy"

    def __init__(self, job_id: str, delay: float) -> None:
        super().__init__(f"job {job_id} is being ingested by another worker")
        self.delay = delay


# --- copy ----------------------------------------------------------------------------------------

def take_lease(relay: Relay, job: Job, worker: str) -> Job:
    now = relay.clock()
    if job.lease_owner not in (None, worker) and (job.lease_until or 0) > now:
        raise Busy(job.id, min((job.lease_until or now) - now, 30.0))
    leased = job.leased(now, worker, now + relay.settings.ingest_lease)
    try:
        return relay.jobs.update(leased)
    except Conflict as exc:
        raise Busy(job.id, 1.0) from exc


def copy_results(relay: Relay, job: Job, results: tuple[str, ...],
                 worker: str) -> tuple[Job, tuple[Output, ...] | DownloadFailed]:
    """Copy the results under the lease (the manifest is written once they are described).

    Returns the job and its outputs, or the permanent failure that fails the job; a failure that is
    retried releases the lease and raises.
    """
    job, outputs = under_lease(relay, job, worker, lambda: tuple(
        _copy_one(relay, job, index, url) for index, url in enumerate(results)))
    if isinstance(outputs, tuple):
        log.debug("job.stored", job_id=job.id, outputs=len(outputs), bytes=sum(o.size for o in outputs))
    return job, outputs


def under_lease(relay: Relay, job: Job, worker: str, step: Callable[[], _T]) -> tuple[Job, _T | DownloadFailed]:
    """Run ``step`` under the job's lease, renewed while it runs: the job and what ``step`` returned, or the
    permanent :class:`DownloadFailed` that fails the job (logged and counted). A failure that is retried
    releases the lease and raises."""
    keeper = LeaseKeeper(relay, job, worker)
    try:
        done = step()
    except DownloadFailed as exc:
        job = keeper.stop()
        if not exc.permanent:
            release_lease(relay, job, worker)
            raise
        return failed_copy(relay, job, exc)
    except RelayError:
        release_lease(relay, keeper.stop(), worker)
        raise
    return keeper.stop(), done


def failed_copy(relay: Relay, job: Job, error: DownloadFailed) -> tuple[Job, DownloadFailed]:
    """Log and count a failure that fails the job; the job as it is stored now, and the failure."""
    log.warning("job.copy_failed", job_id=job.id, code=error.code, reason=error.message)
    relay.metrics.ingest_failure(error.code)
    return relay.jobs.get(job.id), error


def _copy_one(relay: Relay, job: Job, index: int, url: str) -> Output:
    key = f"jobs/{job.id}/output-{index}.mp4"
    stored = relay.blobs.head(key)
    replacing = stored is not None and _unplayable(relay, job.id, index, stored.sha256)
    if replacing:
        log.info("job.copy_again", job_id=job.id, output=index)
        stored = None
    if stored is None:
        started = time.perf_counter()
        with relay.fetcher.open(url) as download:
            stored = relay.blobs.put_stream(
                key, download.chunks, content_type=download.content_type, only_new=not replacing,
                metadata={"job_id": job.id, "task_id": job.task_id or "", "source": "evolink"})
        relay.metrics.copied(stored.size, time.perf_counter() - started)
    return Output(uri=stored.uri, key=stored.key, size=stored.size, sha256=stored.sha256,
                  content_type=stored.content_type)


# --- unplayable copies ---------------------------------------------------------------------------

def unplayable_key(job_id: str, index: int) -> str:
    """Where the copy of output ``index`` found unplayable is noted (its sha256 and the attempts so far)."""
    return f"jobs/{job_id}/output-{index}.unplayable.json"


def note_unplayable(relay: Relay, job: Job, index: int, output: Output, reason: str) -> int:
    """Note that the stored copy of output ``index`` does not play, so the next attempt downloads it again;
    return how many attempts found it so."""
    key = unplayable_key(job.id, index)
    attempts = int(_read_note(relay, key).get("attempts", 0)) + 1
    note = {"attempts": attempts, "sha256": output.sha256, "reason": reason, "noted_at": relay.clock()}
    relay.blobs.put_stream(key, [json.dumps(note, sort_keys=True).encode()], content_type="application/json")
    return attempts


def _unplayable(relay: Relay, job_id: str, index: int, sha256: str) -> bool:
    return _read_note(relay, unplayable_key(job_id, index)).get("sha256") == sha256


def _read_note(relay: Relay, key: str) -> dict[str, Any]:
    if relay.blobs.head(key) is None:
        return {}
    try:
        note = json.loads(b"".join(relay.blobs.read(key)))
    except (NotFound, ValueError):
        return {}
    return note if isinstance(note, dict) else {}


# --- lease ---------------------------------------------------------------------------------------

class LeaseKeeper:
    """Renews the lease every third of its length while a long step (a copy, reading the media) runs."""

    def __init__(self, relay: Relay, job: Job, worker: str) -> None:
        self._relay, self._worker, self.job = relay, worker, job
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job.id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        relay, lease = self._relay, self._relay.settings.ingest_lease
        while not self._stop.wait(lease / 3):
            with self._lock:
                try:
                    self.job = owned_update(
                        relay, self.job, self._worker, lambda job: job.leased(relay.clock(), self._worker,
                                                                              relay.clock() + lease))
                except RelayError as exc:
                    log.warning("job.lease_lost", job_id=self.job.id, code=exc.code)
                    return

    def stop(self) -> Job:
        self._stop.set()
        self._thread.join()
        with self._lock:
            return self.job


def release_lease(relay: Relay, job: Job, worker: str) -> None:
    """Best effort: let the next worker in at once after a failure that will be retried."""
    try:
        owned_update(relay, job, worker, lambda current: current.released(relay.clock()))
    except RelayError:
        log.info("job.lease_kept", job_id=job.id)  # it expires on its own


def owned_update(relay: Relay, job: Job, worker: str, move: Callable[[Job], Job]) -> Job:
    """Apply ``move`` to a job this worker leases, re-reading it when another writer (the
    reconciler moving ``check_at``, say) bumped its version in the meantime.

    A move the lifecycle refuses (the reconciler expired the job meanwhile) is not retried.
    """
    for _ in range(5):
        moved = move(job)
        try:
            return relay.jobs.update(moved)
        except Conflict:
            job = relay.jobs.get(job.id)
            if job.lease_owner != worker:
                raise Busy(job.id, 1.0) from None
    raise Busy(job.id, 1.0)
