"""Cancel and completion arriving together, from two processes, for the race tests.

Each job's task has completed at the sandbox and nothing has ingested it yet. For every job in turn both
processes wait on one barrier; then one ingests the job (reads the completed task, copies its result,
records it, publishes) while the other cancels it, after a short seeded delay so that either may win.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from handlers.app.settings import Settings
from handlers.app.wiring import build_relay
from handlers.base.errors import Conflict
from handlers.usecases.cancel import JobEnded, cancel
from handlers.usecases.ingest import Busy, ingest
from tests.support.processes import race_in_processes

__all__ = ["RaceTally", "race_cancel_and_completion", "tally_race"]

RaceTally = dict[str, Any]


def _complete(relay: Any, job_id: str) -> str:
    try:
        return str(ingest(relay, job_id, worker="racer").status.value)
    except (Busy, Conflict) as exc:  # the cancel recorded its outcome first
        return f"lost:{exc.code}"


def _cancel(relay: Any, job_id: str) -> str:
    try:
        return str(cancel(relay, job_id).status.value)
    except JobEnded as exc:  # the completion recorded its outcome first
        return f"lost:{exc.status}"


def _side(env: Mapping[str, str], job_ids: list[str], role: str, seed: int, barrier: Any, results: Any) -> None:
    relay = build_relay(Settings.from_env(dict(env)))
    delays = random.Random(seed)
    seen: dict[str, str] = {}
    try:
        for job_id in job_ids:
            barrier.wait()
            if role == "cancel":
                time.sleep(delays.uniform(0.0, 0.15))
                seen[job_id] = _cancel(relay, job_id)
            else:
                seen[job_id] = _complete(relay, job_id)
        results.put((role, seen))
    finally:
        relay.close()


def race_cancel_and_completion(env: Mapping[str, str], job_ids: list[str], seed: int = 7) -> dict[str, dict[str, str]]:
    """Race a cancel against the completion of each job of ``job_ids`` (one at a time, in two spawned processes
    on the relay ``env`` configures); what each side saw, by side (``complete``, ``cancel``) and job."""
    reported = race_in_processes(_side, [(dict(env), job_ids, role, seed) for role in ("complete", "cancel")],
                                 timeout=600)
    return {role: seen for role, seen in reported}


def tally_race(jobs: Mapping[str, Any], events: Iterable[Mapping[str, Any]], sides: dict[str, dict[str, str]],
               copied: set[str]) -> RaceTally:
    """The race's figures: final statuses, who won, the events each job published, and the cancelled jobs whose
    result is still in storage (``copied``: the jobs with a stored video), copied before the cancel won and
    never removed."""
    by_job: Counter[str] = Counter()
    mismatched = 0
    for event in events:
        job = jobs.get(str(event["subject"]))
        if job is None:
            continue
        by_job[job.id] += 1
        expected = {"published": "completed"}.get(job.status.value, job.status.value)
        mismatched += event["type"].rsplit(".", 1)[1] != expected
    statuses = Counter(job.status.value for job in jobs.values())
    return {"rounds": len(jobs), "statuses": dict(statuses),
            "cancel_won": sum(not seen.startswith("lost") for seen in sides["cancel"].values()),
            "completion_won": sum(not seen.startswith("lost") and seen == "published"
                                  for seen in sides["complete"].values()),
            "events_per_job": dict(Counter(by_job[job_id] for job_id in jobs)),
            "mismatched_events": mismatched,
            "cancelled_with_outputs": sum(1 for job in jobs.values() if job.status.value == "cancelled"
                                          and job.outputs),
            "orphan_copies": sum(1 for job in jobs.values() if job.status.value == "cancelled" and job.id in copied)}
