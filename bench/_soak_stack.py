"""The soak's stack: the relay process (started, SIGKILLed, started again), the sandbox, moto, their settings.

The relay runs as ``seedance-relay serve`` runs it (:func:`serve_relay`, in a process started as
``bench/soak.py --role relay``), with the storage faults of ``bench/_faults.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import FAKE_AWS, PYTHON, ROOT, free_port, python_env, spawned, wait_until_answers

__all__ = [
    "API_KEY",
    "RELAY_TUNING",
    "REQUEST",
    "Plan",
    "RelayProcess",
    "aws_stack",
    "fake_aws",
    "relay_env",
    "running_exe",
    "sandbox_args",
    "serve_relay",
]

SOAK = Path(__file__).with_name("soak.py")

API_KEY = "soak-relay-key-0123456789"
SECRET = "k1:" + "s" * 32
EXE = str(Path(PYTHON).with_name("seedance-relay"))
REQUEST: dict[str, Any] = {"model": "seedance-2.0-text-to-video", "duration": 4, "quality": "480p",
                           "prompt": "A paper boat drifting down a rainy street"}
RELAY_TUNING = {  # timings shortened so a job whose callback or ack was lost ends within the run
    "RELAY_RECONCILE_EVERY": "5", "RELAY_RECONCILE_GRACE": "5", "RELAY_QUEUE_VISIBILITY_TIMEOUT": "30",
    "RELAY_INGEST_LEASE": "20", "RELAY_RETRY_BACKOFF": "5",
    "RELAY_JOB_RETENTION": "1", "RELAY_EVENT_RETENTION": "1", "RELAY_VIDEO_RETENTION": "1", "RELAY_GC_EVERY": "60",
}


@dataclass(frozen=True, slots=True)
class Plan:
    backend: str
    jobs: int
    minutes: float
    kill_every: float  # minutes; 0: never
    fault_rate: float
    out: Path
    speed: float = 200.0
    retention: float = 300.0  # seconds; 0: no emulated retention pass
    gc_every: float = 60.0
    sample_every: float = 10.0
    drain_timeout: float = 1200.0
    expire_after: float = 900.0
    clients: int = 8
    seed: int = 1

    @property
    def submit_seconds(self) -> float:
        return self.minutes * 60


# --- the relay process ----------------------------------------------------------------------------
def serve_relay(fault_rate: float, seed: int) -> None:
    """What ``seedance-relay serve`` runs, with the storage faults of ``bench/_faults.py``."""
    from bench._faults import faulty_build
    from handlers.app.runtime import LocalRuntime
    from handlers.app.settings import Settings
    from handlers.base.logs import configure
    from handlers.cli.serve import server_limits
    from handlers.net.server import ReadyServer, bind, server_config, tune_gc_for_serving

    settings = Settings.from_env()
    configure(settings.log_level, "json")
    listener = bind(settings.host, settings.port)
    runtime = LocalRuntime(settings, build=faulty_build(fault_rate, seed)).start()
    try:
        app = runtime.app()
        tune_gc_for_serving()
        config = server_config(app, host=settings.host, port=settings.port, limits=server_limits(settings))
        ReadyServer(config).run(sockets=[listener])
    finally:
        listener.close()
        runtime.stop()


class RelayProcess:
    """The relay under test: started, SIGKILLed and started again on the same data."""

    def __init__(self, plan: Plan, env: dict[str, str], log: Path) -> None:
        self.plan, self.env, self.log = plan, env, log
        self.url = f"http://127.0.0.1:{env['RELAY_PORT']}"
        self.process: subprocess.Popen[bytes] | None = None
        self.lives = 0

    @property
    def pid(self) -> int | None:
        process = self.process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> float:
        """Start it; the seconds until it answered."""
        began = time.monotonic()
        self.lives += 1
        args = [PYTHON, str(SOAK), "--role", "relay", "--fault-rate", str(self.plan.fault_rate),
                "--seed", str(self.plan.seed * 1000 + self.lives)]
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(args, stdout=sink, stderr=sink, env=python_env(self.env), cwd=ROOT)
        wait_until_answers(f"{self.url}/healthz", self.process, timeout=120.0)
        return time.monotonic() - began

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


# --- the stack ------------------------------------------------------------------------------------
@contextmanager
def running_exe(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``seedance-relay ARGS`` in the background for the ``with`` block, its output added to ``log``."""
    with spawned(args, log=log, program=EXE, append=True) as process:
        yield process


@contextmanager
def fake_aws() -> Iterator[None]:
    """This process's AWS variables as moto wants them, for the ``with`` block (then as they were)."""
    saved = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(name, None)
    os.environ.update(FAKE_AWS)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def aws_stack(moto: str) -> dict[str, str]:
    """Resource names of one stack on moto, created (with the ``audit`` subscriber's queue)."""
    from handlers.adapters.aws import AwsNames, aws_clients
    from handlers.adapters.aws.bootstrap import bootstrap

    env = {"RELAY_BACKEND": "aws", "AWS_ENDPOINT_URL": moto, "RELAY_TABLE": "soak-jobs", "RELAY_BUCKET": "soak-videos",
           "RELAY_INGEST_QUEUE": "soak-ingest", "RELAY_REQUESTS_QUEUE": "soak-requests", "RELAY_TOPIC": "soak-events",
           "RELAY_SUBSCRIBER_QUEUE_PREFIX": "soak-sub-", **FAKE_AWS}
    names = AwsNames.from_env(env)
    bootstrap(aws_clients(names, endpoint_url=moto), names, {"audit": ["*"]}, max_receives=8, visibility_timeout=30)
    return env


def relay_env(plan: Plan, sandbox_url: str, aws: dict[str, str] | None) -> dict[str, str]:
    """A job whose create was cut off by a kill waits for a callback that may never come (it is never sent
    again: the outcome is unknown), and expires after ``RELAY_EXPIRE_AFTER``: shortened so it ends in the run."""
    env = {"RELAY_EXPIRE_AFTER": str(plan.expire_after),
           "RELAY_DATA_DIR": str(plan.out / "data"), "RELAY_PORT": str(free_port()), "RELAY_API_KEYS": API_KEY,
           "RELAY_CALLBACK_SECRET": SECRET, "EVOLINK_BASE_URL": sandbox_url, "RELAY_SUBSCRIBERS": "audit:*",
           "RELAY_LOG_LEVEL": "info", **RELAY_TUNING, **(aws or {})}
    return env


def sandbox_args(plan: Plan, port: int) -> list[str]:
    rate = str(plan.fault_rate)
    return ["sandbox", "--port", str(port), "--data-dir", str(plan.out / "sandbox"), "--speed", str(plan.speed),
            "--create-error-rate", rate, "--callback-drop", rate, "--fail-rate", rate]
