"""SIGKILL the relay mid-download and mid-upload, restart it: nothing lost, nothing doubled.

The relay is killed with a sandbox of its own beside it, and, separately, with the sandbox
it runs in-process, which restarts with it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.app.runtime import SANDBOX_PORT_FILE
from handlers.app.settings import Settings
from handlers.app.wiring import build_ports
from handlers.domain.jobs import TERMINAL
from handlers.net.server import free_port
from tests.reliability.harness import API_KEY, REQUEST, SECRET, aws_env, bootstrap_aws, record
from tests.support.faults import Faults, fault_proxy
from tests.support.servers import wait_until

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).with_name("seedance-relay"))


@contextmanager
def spawned(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen([EXE, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def start_relay(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen([EXE, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_until(lambda: healthy(f"http://127.0.0.1:{env['RELAY_PORT']}"), 30, "the relay to listen")
    return proc


def finished(env: dict[str, str], job_ids: list[str]) -> int:
    jobs, _, _, _, closers = build_ports(Settings.from_env(env))
    try:
        return sum(jobs.get(job_id).status in TERMINAL for job_id in job_ids)
    finally:
        for close in closers:
            close()


def counts(env: dict[str, str], job_ids: list[str]) -> dict[str, Any]:
    """Final figures; drains the audit subscriber, so call it once."""
    settings = Settings.from_env(env)
    jobs, blobs, ingest, bus, closers = build_ports(settings)
    try:
        states = [jobs.get(job_id) for job_id in job_ids]
        audit = bus.subscriber("audit")
        events: list[Any] = []
        while messages := audit.receive(max_messages=10):
            events += [dict(m.body) for m in messages]
            for message in messages:
                audit.ack(message)
        videos = sum(1 for s in states for o in s.outputs if blobs.head(o.key) is not None)
        return {"statuses": sorted({s.status.value for s in states}),
                "final": sum(s.status in TERMINAL for s in states), "stored_videos": videos,
                "event_messages": len(events), "unique_events": len({e["id"] for e in events}),
                "dead": ingest.depth()["dead"] + audit.depth()["dead"]}
    finally:
        for close in closers:
            close()


def test_kills_mid_flight_lose_nothing_and_double_nothing(
        backend: str, moto_for: str | None, tmp_path: Path, scale: int) -> None:
    count = 12 * scale
    sandbox_port, relay_port = free_port(), free_port()
    env = {**os.environ, "RELAY_DATA_DIR": str(tmp_path / "relay"), "RELAY_API_KEYS": API_KEY,
           "RELAY_CALLBACK_SECRET": SECRET, "EVOLINK_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
           "RELAY_PORT": str(relay_port), "RELAY_RECONCILE_EVERY": "1", "RELAY_RECONCILE_GRACE": "1",
           "RELAY_QUEUE_VISIBILITY_TIMEOUT": "4", "RELAY_SUBSCRIBERS": "audit:*", "RELAY_WORKERS": "4",
           "RELAY_INGEST_LEASE": "6"}
    env.pop("EVOLINK_API_KEY", None)
    log = tmp_path / "processes.log"
    with ExitStack() as stack:
        if backend == "aws":
            assert moto_for is not None
            slow_s3 = Faults(delay=0.5, applies=lambda r: r.method == "PUT")  # uploads in flight when killed
            endpoint = stack.enter_context(fault_proxy(moto_for, slow_s3))
            env.update(aws_env(moto_for, endpoint))
            bootstrap_aws(env, moto_for)
        stack.enter_context(spawned(["sandbox", "--port", str(sandbox_port), "--data-dir", str(tmp_path / "sandbox"),
                                     "--speed", "200", "--download-delay", "1.5"], env, log))
        wait_until(lambda: healthy(f"http://127.0.0.1:{sandbox_port}"), 30, "the sandbox to listen")
        relay = start_relay(env, log)
        api = httpx.Client(base_url=f"http://127.0.0.1:{relay_port}", headers={"Authorization": f"Bearer {API_KEY}"})
        job_ids = [api.post("/v1/jobs", json={**REQUEST, "metadata": {"n": i}},
                            headers={"Idempotency-Key": f"kill-{i}"}).json()["id"] for i in range(count)]
        kills = 0
        for pause in (2.0, 2.5, 3.0):  # kill while downloads (and, on aws, uploads) are in flight
            time.sleep(pause)
            relay.send_signal(signal.SIGKILL)
            relay.wait(timeout=10)
            kills += 1
            relay = start_relay(env, log)
        try:
            wait_until(lambda: finished(env, job_ids) == count, 240, "every job to finish after the kills",
                       interval=1.0)
        finally:
            relay.send_signal(signal.SIGINT)
            relay.wait(timeout=30)
            api.close()
        figures = counts(env, job_ids) | {"kills": kills, "jobs": count}
    record(f"kills[{backend}]", figures)
    assert figures["statuses"] == ["published"]
    assert (figures["stored_videos"], figures["unique_events"]) == (count, count)
    if backend == "local":  # the local bus records and fans out in one transaction
        assert figures["event_messages"] == count
    else:  # SNS: a kill between Publish and recording it may deliver an event again, same id
        assert count <= figures["event_messages"] <= count + figures["kills"]
    assert figures["dead"] == 0


def stored_videos(env: dict[str, str], job_ids: list[str]) -> dict[str, tuple[str, str, bool]]:
    """Each job's status, first error code and whether its stored video's bytes match size and sha256."""
    jobs, blobs, _, _, closers = build_ports(Settings.from_env(env))
    try:
        found: dict[str, tuple[str, str, bool]] = {}
        for job_id in job_ids:
            job = jobs.get(job_id)
            intact = bool(job.outputs) and all(_intact(blobs.read(o.key), o.size, o.sha256) for o in job.outputs)
            found[job_id] = (job.status.value, str((job.error or {}).get("code", "")), intact)
        return found
    finally:
        for close in closers:
            close()


def _intact(chunks: Any, size: int, sha256: str) -> bool:
    digest, total = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        total += len(chunk)
    return total == size > 0 and digest.hexdigest() == sha256


@contextmanager
def port_taken(port: int) -> Iterator[None]:
    """Another process's listener on 127.0.0.1:``port`` (``SO_REUSEADDR``: the killed relay's connections
    may linger in TIME_WAIT)."""
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        yield


@pytest.mark.parametrize(("stop", "squat"), [(signal.SIGKILL, False), (signal.SIGTERM, False),
                                             (signal.SIGKILL, True)],
                         ids=["sigkill", "sigterm", "sigkill-sandbox-port-taken"])
def test_jobs_in_flight_with_the_in_process_sandbox_are_published_after_a_restart(
        tmp_path: Path, stop: signal.Signals, squat: bool) -> None:
    """``serve`` with its built-in sandbox, stopped while tasks render and results download, then started
    again on the same data dir: every job is published with its video, none refused as an unsafe result URL.
    With the sandbox's old port taken by then, it moves and still serves the earlier tasks' results."""
    count, data = 8, tmp_path / "relay"
    env = {**os.environ, "RELAY_DATA_DIR": str(data), "RELAY_API_KEYS": API_KEY, "RELAY_CALLBACK_SECRET": SECRET,
           "RELAY_PORT": str(free_port()), "RELAY_RECONCILE_EVERY": "1", "RELAY_RECONCILE_GRACE": "1",
           "RELAY_QUEUE_VISIBILITY_TIMEOUT": "4", "RELAY_INGEST_LEASE": "6", "RELAY_WORKERS": "2",
           "SANDBOX_SPEED": "60", "SANDBOX_DOWNLOAD_DELAY": "1.5"}  # tasks run ~1.4 s, downloads wait 1.5 s
    for name in ("EVOLINK_API_KEY", "EVOLINK_BASE_URL"):
        env.pop(name, None)
    log = tmp_path / "serve.log"
    relay = start_relay(env, log)
    sandbox_port = int((data / "sandbox" / SANDBOX_PORT_FILE).read_text())
    with httpx.Client(base_url=f"http://127.0.0.1:{env['RELAY_PORT']}", headers={"Authorization": f"Bearer {API_KEY}"},
                      timeout=10) as api:
        job_ids = [api.post("/v1/jobs", json={**REQUEST, "metadata": {"n": i}}).json()["id"] for i in range(count)]
    time.sleep(2.0)  # some tasks rendered and downloading, later ones still rendering
    assert finished(env, job_ids) < count, "the stop must come while jobs are in flight"
    relay.send_signal(stop)
    relay.wait(timeout=60)
    with ExitStack() as stack:
        if squat:
            stack.enter_context(port_taken(sandbox_port))
        relay = start_relay(env, log)
        try:
            wait_until(lambda: finished(env, job_ids) == count, 120, "every job to finish after the restart",
                       interval=0.5)
        finally:
            relay.send_signal(signal.SIGINT)
            relay.wait(timeout=30)
    moved_to = int((data / "sandbox" / SANDBOX_PORT_FILE).read_text())
    assert (moved_to != sandbox_port) is squat
    assert stored_videos(env, job_ids) == {job_id: ("published", "", True) for job_id in job_ids}
