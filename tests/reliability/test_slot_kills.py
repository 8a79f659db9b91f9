"""SIGKILL the relay while it holds its slots at EvoLink, restart it: every queued job still runs, never more than
the cap at once, and no slot stays taken.

``seedance-relay sandbox`` and ``seedance-relay serve`` run as processes (as in ``test_kills.py``), with
``RELAY_MAX_IN_FLIGHT=2`` and tasks that take 1.4 s, so most jobs are queued when the relay dies. Before the
first restart a lease is left in the pool as a worker that died between taking its slot and creating its task
would leave it (it expires a second later); the restarted reconciler must free it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.app.settings import Settings
from handlers.app.wiring import build_accounts, build_ports
from handlers.domain.admission import IN_FLIGHT_LIMIT
from handlers.domain.jobs import TERMINAL, JobStatus
from handlers.net.server import free_port
from tests.reliability.harness import API_KEY, REQUEST, SECRET, aws_env, bootstrap_aws, record
from tests.reliability.test_kills import counts, healthy, spawned, start_relay
from tests.support.servers import wait_until
from tests.support.tenants import max_overlap

pytestmark = pytest.mark.slow
CAP = 2
DEAD_JOB = "job_" + "d" * 26  # the holder of a slot that died before its task was created


def slot_leases(env: dict[str, str], *, add_dead_lease: bool = False) -> int:
    """The live leases in the relay's slot pool; first, if asked, one a dead worker left (expiring in 1 s)."""
    _, _, slots, closers = build_accounts(Settings.from_env(env))
    try:
        now = time.time()
        if add_dead_lease:
            assert slots.acquire(DEAD_JOB, "default", now=now, until=now + 1.0, cap=IN_FLIGHT_LIMIT, tenant_cap=None)
        return len(slots.leases(now))
    finally:
        for close in closers:
            close()


def states(env: dict[str, str], job_ids: list[str], killed_at: float) -> Counter[str]:
    """How many jobs are final, still moving, or stuck: accepted and claimed by a submitter killed at ``killed_at``
    (such a job waits for its task's callback; the wait below stops for it rather than time out)."""
    jobs, _, _, _, closers = build_ports(Settings.from_env(env))
    try:
        tally: Counter[str] = Counter()
        for job in (jobs.get(job_id) for job_id in job_ids):
            claimed_by_the_dead = job.submit_claimed_at is not None and job.submit_claimed_at < killed_at
            stuck = job.status is JobStatus.ACCEPTED and job.task_id is None and claimed_by_the_dead
            tally["final" if job.status in TERMINAL else "stuck" if stuck else "moving"] += 1
        return tally
    finally:
        for close in closers:
            close()


def sandbox_overlap(tasks_dir: Path) -> tuple[int, int]:
    """How many tasks the sandbox created, and the most that ran at one instant."""
    tasks = [json.loads(p.read_text()) for p in tasks_dir.glob("*.json")]
    return len(tasks), max_overlap([(t["created"], t["finished"] or time.time()) for t in tasks])


def test_a_relay_killed_holding_its_slots_runs_every_queued_job_after_a_restart(
        backend: str, moto_for: str | None, tmp_path: Path, scale: int) -> None:
    count = 8 * scale
    sandbox_port, relay_port = free_port(), free_port()
    env = {**os.environ, "RELAY_DATA_DIR": str(tmp_path / "relay"), "RELAY_API_KEYS": API_KEY,
           "RELAY_CALLBACK_SECRET": SECRET, "EVOLINK_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
           "RELAY_PORT": str(relay_port), "RELAY_RECONCILE_EVERY": "0.5", "RELAY_RECONCILE_GRACE": "1",
           "RELAY_QUEUE_VISIBILITY_TIMEOUT": "4", "RELAY_SUBSCRIBERS": "audit:*", "RELAY_WORKERS": "2",
           "RELAY_INGEST_LEASE": "6", "RELAY_MAX_IN_FLIGHT": str(CAP), "RELAY_LOG_FORMAT": "json"}
    env.pop("EVOLINK_API_KEY", None)
    log = tmp_path / "processes.log"
    with ExitStack() as stack:
        if backend == "aws":
            assert moto_for is not None
            env.update(aws_env(moto_for, moto_for))
            bootstrap_aws(env, moto_for)
        stack.enter_context(spawned(["sandbox", "--port", str(sandbox_port), "--data-dir", str(tmp_path / "sandbox"),
                                     "--speed", "60"], env, log))
        wait_until(lambda: healthy(f"http://127.0.0.1:{sandbox_port}"), 30, "the sandbox to listen")
        relay, started = start_relay(env, log), time.monotonic()
        with httpx.Client(base_url=f"http://127.0.0.1:{relay_port}", headers={"Authorization": f"Bearer {API_KEY}"},
                          timeout=30) as api:
            job_ids = [api.post("/v1/jobs", json={**REQUEST, "metadata": {"n": i}},
                                headers={"Idempotency-Key": f"slot-kill-{i}"}).json()["id"] for i in range(count)]
        kills, held, waiting = 0, [], []
        for pause in (0.5, 1.5):  # first while the first two render, then while queued jobs are being admitted
            time.sleep(pause)
            relay.send_signal(signal.SIGKILL)
            relay.wait(timeout=10)
            killed_at, kills = time.time(), kills + 1
            held.append(slot_leases(env, add_dead_lease=kills == 1))
            waiting.append(count - states(env, job_ids, killed_at)["final"])
            relay = start_relay(env, log)
        try:
            wait_until(lambda: states(env, job_ids, killed_at)["moving"] == 0, 90 * scale,
                       "every job to finish (or be stuck) after the kills", interval=0.5)
        finally:
            relay.send_signal(signal.SIGINT)
            relay.wait(timeout=30)
        seconds = time.monotonic() - started
        tasks, most = sandbox_overlap(tmp_path / "sandbox" / "tasks")
        stuck = states(env, job_ids, killed_at)["stuck"]
        figures: dict[str, Any] = counts(env, job_ids) | {
            "jobs": count, "cap": CAP, "kills": kills, "unfinished_at_each_kill": waiting,
            "leases_after_each_kill": held, "leases_at_end": slot_leases(env), "stuck_after_kill": stuck,
            "sandbox_tasks": tasks, "most_tasks_at_once": most,
            "dead_lease_reclaimed": "slots.reclaimed" in log.read_text(), "seconds": round(seconds, 1)}
    record(f"slot-kills[{backend}]", figures)
    assert figures["stuck_after_kill"] == 0  # a job killed mid-create learns its task from the callback
    assert figures["statuses"] == ["published"] and figures["stored_videos"] == count
    assert min(waiting) > CAP  # jobs were queued behind the slots each time the relay died
    assert figures["sandbox_tasks"] == count
    assert figures["leases_at_end"] == 0 and figures["dead_lease_reclaimed"]
    assert figures["most_tasks_at_once"] <= CAP
