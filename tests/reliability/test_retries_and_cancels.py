"""Retries and cancels under load, on both backends, with their figures in the reliability report.

* **Retries:** half the tasks fail with codes that say try again; every job ends published, or failed after
  exactly ``RELAY_MAX_ATTEMPTS`` tasks, with one event, and every task the sandbox made belongs to one job.
* **Cancel race:** jobs whose tasks completed, each ingested by one process while another cancels it: each job
  ends in one terminal state with one event, whichever won.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.reliability.harness import record, stack, summary
from tests.support.cancels import race_cancel_and_completion, tally_race
from tests.support.servers import wait_until

pytestmark = pytest.mark.slow
RETRY_CODES = "service_error,generation_timeout,resource_exhausted"


def test_half_the_tasks_failing_with_retryable_codes_ends_every_job_once(
        backend: str, moto_for: str | None, tmp_path: Path, scale: int) -> None:
    count = (40 if backend == "local" else 24) * scale
    env = {"RELAY_MAX_ATTEMPTS": "3", "RELAY_RETRY_BACKOFF": "0.2"}
    started = time.monotonic()
    with stack(backend, tmp_path, moto=moto_for, relay_env=env, fail_rate=0.5, fail_code=RETRY_CODES,
               seed=5) as pipeline:
        jobs = pipeline.wait_all_final(pipeline.submit_many(count), timeout=300)
        figures = summary(pipeline, jobs)
        made = len(list((tmp_path / "sandbox" / "tasks").glob("*.json")))
    attempts = {job_id: [a["task_id"] for a in job.attempt_log()] for job_id, job in jobs.items()}
    failed = [job_id for job_id, job in jobs.items() if job.status.value == "failed"]
    figures |= {"tasks_made": made, "tasks_per_job": dict(sorted(Counter(map(len, attempts.values())).items())),
                "tasks_per_failed_job": dict(Counter(len(attempts[job_id]) for job_id in failed)),
                "seconds": round(time.monotonic() - started, 1)}
    record(f"task-retries[{backend}]", figures)
    assert set(figures["statuses"]) <= {"published", "failed"} and sum(figures["statuses"].values()) == count
    assert set(figures["tasks_per_failed_job"]) <= {3} and max(figures["tasks_per_job"]) == 3
    assert made == sum(map(len, attempts.values())) == len({t for ids in attempts.values() for t in ids})
    assert (figures["unique_events"], figures["event_messages"]) == (count, count)
    assert figures["stored_videos"] == figures["statuses"].get("published", 0)


def test_cancel_racing_completion_ends_each_job_once(
        backend: str, moto_for: str | None, tmp_path: Path, scale: int) -> None:
    count = (30 if backend == "local" else 20) * scale
    env = {"RELAY_RECONCILE_EVERY": "3600", "RELAY_RECONCILE_GRACE": "3600"}  # nothing but the race ingests
    with stack(backend, tmp_path, moto=moto_for, relay_env=env, callback_drop=1.0) as pipeline:
        ids = pipeline.submit_many(count)
        tasks = {pipeline.observer().get(job_id).task_id for job_id in ids}
        wait_until(lambda: {t["id"] for t in _tasks(tmp_path) if t["status"] == "completed"} >= tasks, 120,
                   "every task to complete")
        started = time.monotonic()
        sides = race_cancel_and_completion(pipeline.env, ids)
        seconds = time.monotonic() - started
        jobs = {job_id: pipeline.observer().get(job_id) for job_id in ids}
        copied = {job_id for job_id in ids if pipeline.relay.blobs.head(f"jobs/{job_id}/output-0.mp4") is not None}
        figures = tally_race(jobs, pipeline.delivered_events(), sides, copied) | {"seconds": round(seconds, 1)}
    record(f"cancel-race[{backend}]", figures)
    assert set(figures["statuses"]) <= {"published", "cancelled"} and sum(figures["statuses"].values()) == count
    assert figures["events_per_job"] == {1: count} and figures["mismatched_events"] == 0
    assert figures["cancel_won"] + figures["completion_won"] == count and figures["cancelled_with_outputs"] == 0
    assert figures["orphan_copies"] == 0  # a copy the cancel beat to the record is removed


def _tasks(tmp: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in (tmp / "sandbox" / "tasks").glob("*.json")]
