"""Soak: thousands of jobs at a steady rate through a relay that is SIGKILLed on a schedule, with faults.

**The stack.** The relay runs as ``seedance-relay serve`` runs it (same runtime, server and limits),
in its own process, on ``--backend local`` (SQLite and a folder) or ``aws`` (moto in server mode,
``RELAY_BACKEND=aws``). Its blob store, ingest queue and event bus fail at ``--fault-rate``
(``bench/_faults.py``). The provider is ``seedance-relay sandbox`` in a process of its own, with
``--create-error-rate``, ``--callback-drop`` and ``--fail-rate`` at the same rate; it keeps
running while the relay is killed, as EvoLink would. One subscriber, ``audit:*``, gets every event.

**The load.** ``--jobs`` submits spread evenly over ``--minutes`` (each with its own
``Idempotency-Key``, retried on a 5xx or a refused connection until accepted). Every
``--kill-every`` minutes the relay gets SIGKILL and is started again at once on the same data.

**Retention.** The relay keeps jobs, videos and events ``RELAY_*_RETENTION=1`` day, the shortest
its settings take. To see retention hold storage flat within the run, the soak runs the relay's
own clean-up pass (``collect_garbage``) on the same storage every ``--gc-every`` seconds with its
clock one day minus ``--retention`` seconds ahead: it removes what a retention of ``--retention``
seconds would (jobs, videos, uploads and the event log; never queue messages).

**What it watches.** The audit subscriber is drained every second (each completed event's video is
looked up in storage), and every ``--sample`` seconds the relay's RSS (``/proc``, its media reader
processes included), the storage's size and its videos are sampled. At the end: jobs published,
videos stored, unique events, dead letters, RSS and storage over time, throughput; a PNG plot and
one JSON line of figures in ``--out``.

    python bench/soak.py [--jobs 10000] [--minutes 31] [--kill-every 10] [--fault-rate 0.1]
                         [--backend local|aws] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._common import ROOT, emit, free_port, running_moto, wait_until_answers
from bench._soak_report import Observed, dump, figures, plot
from bench._soak_stack import (
    API_KEY,
    RELAY_TUNING,
    REQUEST,
    Plan,
    RelayProcess,
    aws_stack,
    fake_aws,
    relay_env,
    running_exe,
    sandbox_args,
    serve_relay,
)
from bench._soak_storage import Monitor, Storage

__all__ = ["API_KEY", "REQUEST", "Plan", "main", "run"]


# --- the load -------------------------------------------------------------------------------------
class Submitter(threading.Thread):
    """``plan.jobs`` submits at a steady rate, each retried until the relay accepts it."""

    def __init__(self, plan: Plan, url: str, observed: Observed) -> None:
        super().__init__(name="submitter", daemon=True)
        self.plan, self.url, self.observed = plan, url, observed
        self.failures: list[str] = []
        self.halt = threading.Event()  # set on the way out: no more submits, no more retries

    def run(self) -> None:
        interval = self.plan.submit_seconds / self.plan.jobs
        limits = httpx.Limits(max_connections=self.plan.clients)
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30,
                          limits=limits) as client, ThreadPoolExecutor(self.plan.clients) as pool:
            for index in range(self.plan.jobs):
                delay = self.observed.started + index * interval - time.time()
                if self.halt.wait(max(delay, 0.0)):
                    return
                pool.submit(self._one, client, index)

    def _one(self, client: httpx.Client, index: int) -> None:
        body = {**REQUEST, "metadata": {"n": index}}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not self.halt.is_set():
            try:
                answer = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": f"soak-{index}"})
            except httpx.TransportError:  # the relay is down (killed): try again once it is back
                time.sleep(0.25)
                continue
            if answer.status_code in (200, 201, 202):
                self.observed.submitted[index] = (str(answer.json()["id"]), time.time())
                return
            if answer.status_code < 500 and answer.status_code != 429:
                self.failures.append(f"job {index}: {answer.status_code} {answer.text[:200]}")
                return
            time.sleep(0.5)
        self.failures.append(f"job {index}: not accepted within 300 s")


# --- the run --------------------------------------------------------------------------------------
def run(plan: Plan) -> dict[str, Any]:
    for stale in ("data", "sandbox"):
        shutil.rmtree(plan.out / stale, ignore_errors=True)
    plan.out.mkdir(parents=True, exist_ok=True)
    for name in ("relay.log", "sandbox.log", "moto.log"):
        (plan.out / name).unlink(missing_ok=True)
    with ExitStack() as stack:
        aws = None
        if plan.backend == "aws":
            moto = stack.enter_context(running_moto(log=plan.out / "moto.log"))
            stack.enter_context(fake_aws())
            aws = aws_stack(moto)
        port = free_port()
        sandbox = stack.enter_context(running_exe(sandbox_args(plan, port), plan.out / "sandbox.log"))
        wait_until_answers(f"http://127.0.0.1:{port}/healthz", sandbox)
        env = relay_env(plan, f"http://127.0.0.1:{port}", aws)
        relay = RelayProcess(plan, env, plan.out / "relay.log")
        relay.start()
        stack.callback(relay.stop)
        storage = Storage(plan.out / "data", env, retention=plan.retention)
        stack.callback(storage.close)
        observed = Observed(started=time.time())
        monitor = Monitor(storage, observed, relay_pid=lambda: relay.pid, sample_every=plan.sample_every,
                          gc_every=plan.gc_every if plan.retention else 0.0)
        monitor.start()
        stack.callback(monitor.stop)
        submitter = Submitter(plan, relay.url, observed)
        submitter.start()
        stack.callback(submitter.halt.set)
        _kill_on_schedule(plan, relay, observed, submitter)
        submitter.join()
        _wait_for_every_job(plan, monitor, observed)
        monitor.stop()
        relay.stop()
        unfinished = storage.unfinished([job for job, _ in observed.submitted.values()])
        end = {"dead_letters": storage.dead_letters(), "unfinished_records": len(unfinished),
               "unfinished_jobs": dict(list(unfinished.items())[:20]),
               "dead_letters_of_unended_jobs": sorted(set(storage.dead_letter_jobs()) - monitor.ended)}
    return _report(plan, observed, end, submitter.failures)


def _kill_on_schedule(plan: Plan, relay: RelayProcess, observed: Observed, submitter: Submitter) -> None:
    """SIGKILL every ``kill_every`` minutes within the submit window (not after it, even if the submits
    run late), then start the relay again at once."""
    next_kill = plan.kill_every * 60 if plan.kill_every else float("inf")
    while submitter.is_alive():
        elapsed = time.time() - observed.started
        if next_kill <= elapsed and next_kill < plan.submit_seconds:
            relay.kill()
            observed.kills.append(elapsed)
            observed.restart_seconds.append(relay.start())
            next_kill += plan.kill_every * 60
            _progress(f"SIGKILL at {elapsed / 60:.1f} min; answering again after {observed.restart_seconds[-1]:.1f} s")
        time.sleep(0.2)


def _wait_for_every_job(plan: Plan, monitor: Monitor, observed: Observed) -> None:
    deadline = time.monotonic() + plan.drain_timeout
    want = {job for job, _ in observed.submitted.values()}
    while not want <= monitor.ended and time.monotonic() < deadline:
        time.sleep(1.0)
    if not want <= monitor.ended:
        _progress(f"{len(want - monitor.ended)} jobs had no terminal event after {plan.drain_timeout:.0f} s")


def _progress(line: str) -> None:
    print(f"[soak {datetime.now(UTC):%H:%M:%S}] {line}", file=sys.stderr, flush=True)


def _relay_log(log: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Injected faults by kind, and warnings or errors by event name, from the relay's JSON log lines."""
    faults: dict[str, int] = {}
    warnings: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("event") == "soak.fault":
            faults[str(entry.get("kind"))] = faults.get(str(entry.get("kind")), 0) + 1
        elif entry.get("level") in ("warning", "error", "critical"):
            warnings[str(entry.get("event"))] = warnings.get(str(entry.get("event")), 0) + 1
    return faults, warnings


def _report(plan: Plan, observed: Observed, end: dict[str, Any], submit_failures: list[str]) -> dict[str, Any]:
    duration = (observed.samples[-1].at if observed.samples else 0.0)
    faults, warnings = _relay_log(plan.out / "relay.log")
    title = (f"soak ({plan.backend}): {plan.jobs} jobs over {plan.minutes:g} min, SIGKILL every "
             f"{plan.kill_every:g} min, faults {plan.fault_rate:.0%}")
    dump(observed, plan.out / "observed.json")
    image = plot(observed, plan.out / "soak.png", title)
    result = {"backend": plan.backend, "jobs": plan.jobs, "minutes": plan.minutes, "kill_every_min": plan.kill_every,
              "fault_rate": plan.fault_rate, "retention_s": plan.retention, "expire_after_s": plan.expire_after,
              "duration_min": round(duration / 60, 1),
              "date": f"{datetime.now(UTC):%Y-%m-%d}", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              **figures(observed, duration=duration, submit_seconds=plan.submit_seconds,
                        retention_window=plan.retention),
              **end, "submit_failures": len(submit_failures), "injected_storage_faults": faults,
              "relay_warnings": warnings, "plot": str(image), "relay_settings": RELAY_TUNING}
    result["dead_letters_total"] = sum(end["dead_letters"].values())
    result["checks"] = _checks(plan, result)
    (plan.out / "figures.json").write_text(json.dumps(result, sort_keys=True) + "\n")
    _table(result)
    return result


def _checks(plan: Plan, r: dict[str, Any]) -> dict[str, bool | None]:
    twice_ok = r["duplicate_deliveries"] == 0 if plan.backend == "local" else r["duplicate_deliveries"] <= r["kills"]
    return {"every_job_ended": r["jobs_ended"] == r["jobs_submitted"] == plan.jobs,
            "no_event_lost_or_twice": r["jobs_with_two_terminal_events"] == 0 and twice_ok,
            "videos_stored_equal_published": r["videos_stored"] == r["jobs_published"],
            "dead_letters_only_of_ended_jobs": not r["dead_letters_of_unended_jobs"],
            "rss_growth_under_50_mib": r["rss_target_met"],
            "storage_flat": r.get("storage_flat")}


def _table(r: dict[str, Any]) -> None:
    jobs = f"{r['jobs_submitted']} / {r['jobs_ended']} / {r['jobs_published']}"
    rows = [["jobs submitted / ended / published", jobs],
            ["videos stored", r["videos_stored"]],
            ["events: messages / unique", f"{r['event_messages']} / {r['unique_events']}"],
            ["dead letters", r["dead_letters_total"]],
            ["kills (minutes)", f"{r['kills']} {r['kill_minutes']}"],
            ["RSS growth, last two thirds (MiB)", f"{r['rss_growth_last_two_thirds_mib']} (target < 50)"],
            ["storage first / peak / last (MiB)", " / ".join(str(v) for v in r.get("storage_mib", {}).values())],
            ["jobs/minute min / median / max", " / ".join(str(v) for v in r["jobs_per_minute"].values())],
            ["plot", r["plot"]]]
    emit(f"soak-{r['backend']}", ["figure", "value"], rows, r)


# --- the command line -----------------------------------------------------------------------------
def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
        return value

    return parse


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 0.5:
        raise argparse.ArgumentTypeError(f"must be from 0 to 0.5, got {text}")
    return value


def _at_least_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


DEFAULTS = {"local": {"jobs": 10_000, "minutes": 31.0, "kill_every": 10.0, "drain_timeout": 1200.0},
            "aws": {"jobs": 2_000, "minutes": 40.0, "kill_every": 10.0, "drain_timeout": 2700.0}}


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Plan | None]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--backend", choices=("local", "aws"), default="local",
                        help="local: SQLite and a folder; aws: RELAY_BACKEND=aws on moto")
    parser.add_argument("--jobs", type=_positive(int), help="jobs to submit (local 10000, aws 2000)")
    parser.add_argument("--minutes", type=_positive(float),
                        help="minutes the submits are spread over (local 31, aws 40)")
    parser.add_argument("--kill-every", type=_at_least_zero,
                        help="minutes between SIGKILLs; 0: none (local 10, aws 10)")
    parser.add_argument("--fault-rate", type=_rate, default=0.1, help="probability of each storage and provider fault")
    parser.add_argument("--out", type=Path, help="where the logs, figures.json and soak.png go "
                        "(default bench/soak-out/BACKEND)")
    parser.add_argument("--speed", type=_positive(float), default=200.0, help="sandbox speed")
    parser.add_argument("--retention", type=_at_least_zero, default=300.0,
                        help="seconds of retention the clean-up pass emulates; 0: only the relay's own (1 day)")
    parser.add_argument("--gc-every", type=_positive(float), default=60.0, help="seconds between clean-up passes")
    parser.add_argument("--sample", type=_positive(float), default=10.0, help="seconds between samples")
    parser.add_argument("--drain-timeout", type=_positive(float),
                        help="seconds to wait for the last jobs after the last submit (local 1200, aws 2700)")
    parser.add_argument("--expire-after", type=_positive(float), default=900.0,
                        help="RELAY_EXPIRE_AFTER: when a job cut off mid-create by a kill ends (expired)")
    parser.add_argument("--role", choices=("driver", "relay"), default="driver", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help="seed of the injected faults")
    args = parser.parse_args(argv)
    if args.role == "relay":
        return args, None
    defaults = DEFAULTS[args.backend]
    plan = Plan(backend=args.backend, jobs=args.jobs or int(defaults["jobs"]),
                minutes=args.minutes or defaults["minutes"],
                kill_every=defaults["kill_every"] if args.kill_every is None else args.kill_every,
                fault_rate=args.fault_rate, out=args.out or ROOT / "bench" / "soak-out" / args.backend,
                speed=args.speed, retention=args.retention, gc_every=args.gc_every, sample_every=args.sample,
                drain_timeout=args.drain_timeout or defaults["drain_timeout"], expire_after=args.expire_after,
                seed=args.seed)
    return args, plan


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, plan = parse(argv)
    if plan is None:
        serve_relay(args.fault_rate, args.seed)
        return {}
    return run(plan)


if __name__ == "__main__":
    from handlers.base.logs import configure

    configure("warning")  # the driver's own log lines (its clean-up passes'): warnings only
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the relay, sandbox and moto on the way out
    checks = main().get("checks", {})
    sys.exit(1 if False in checks.values() else 0)  # a check not judged (None) does not fail the run
