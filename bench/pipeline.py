"""Pipeline: N jobs through the relay on embedded defaults vs the sandbox's own ceiling, then a steady load.

**relay** (throughput, a flood): one process runs what ``seedance-relay serve`` runs:
``LocalRuntime`` (SQLite, a folder, 2 ingest workers each reading videos in a child process, the
sandbox in-process at ``--speed``)
under ``uvicorn.run(app, log_level="warning")``. The app is wrapped in a tiny ASGI middleware
that notes when each job's first callback arrives. The driver (another process) submits all
the jobs at once over HTTP from ``--clients`` threads and waits until every job's event is on
the bus; the publish times come from the bus's ``events`` table, the callback times from the
middleware. Reported: jobs/s (first submit → last event), callback→event and submit→event
latency, and the relay process's CPU time per job (its in-process sandbox included), in all and
by thread group (ingest workers, API, in-process sandbox, threads that ended or are native, such
as FFmpeg's decoders). The processes are in ``bench/_pipeline_servers.py``.

**media in threads**: the same flood through a relay with ``RELAY_MEDIA_PROCESSES=0``, which reads each
stored video in its ingest thread rather than in a child process. Reported: its jobs/s, and the default
relay's jobs/s over it (``media_processes_speedup``). The relay's CPU figures include its media reader
processes' CPU (``media_processes``, from ``/proc``).

**sandbox ceiling**: the sandbox alone (``seedance-relay sandbox`` in one process) creates
the same N tasks from the same client threads and calls back a trivial receiver (a third
process that answers 200 and notes arrival times). Reported: tasks/s (first create → last
callback) and create→callback latency.

**steady load** (latency, not a flood): a fresh relay process, set up as above, is offered
jobs at a constant rate, by default half the jobs/s the flood reached (the relay's own
ceiling), for ``--steady-seconds``. The schedule is open loop: job *i* is due at
``start + i / rate`` whatever happened to the jobs before it, and a client thread that is
late submits at once without moving the schedule (how late, ``submit_lag_p99_ms``, is
reported, so a driver that could not keep up shows). Reported: the offered, submitted and
published rates, and callback→event and submit→event p50, p95 and p99 against the target
(callback→event p99 ≤ 2 s).

Every request asks for 480p, 4 s, 16:9 with audio, so the sandbox renders one MP4 and then
serves it from its cache; one warm-up job/task renders it before the clock starts.

    python bench/pipeline.py [--quick] [--jobs 1000] [--speed 1000] [--clients 8] [--workers 2]
                             [--steady-seconds 30] [--steady-rate JOBS_PER_S]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._common import emit, free_port, percentile, ratio, spawned, wait_until_answers
from bench._pipeline_servers import API_KEY, cpu_by_group, serve_receiver, serve_relay, serve_sandbox

__all__ = ["REQUEST", "STEADY_P99_TARGET_MS", "main"]

STEADY_P99_TARGET_MS = 2000.0
"""The target for callback→event p99 under the steady load."""
REQUEST: dict[str, Any] = {
    "model": "seedance-2.0-reference-to-video", "prompt": "Use image 1 as the first frame, audio 1 as music",
    "image_urls": ["https://example.com/style.png"], "audio_urls": ["https://example.com/bgm.mp3"],
    "duration": 4, "quality": "480p", "aspect_ratio": "16:9", "generate_audio": True,
}


# --- driver ------------------------------------------------------------------------------------
def _fan_out(count: int, clients: int, send: Callable[[httpx.Client, int], None], base_url: str,
             headers: dict[str, str], due: Callable[[int], float] | None = None) -> dict[int, float]:
    """``send(client, i)`` for i in 0..count-1 from ``clients`` threads; returns each i's start time.

    With ``due``, request i waits until ``due(i)`` (a ``time.time()``), or goes at once if that has passed.
    """
    started: dict[int, float] = {}
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
            for index in range(offset, count, clients):
                if due is not None and (wait := due(index) - time.time()) > 0:
                    time.sleep(wait)
                started[index] = time.time()
                try:
                    send(client, index)
                except (httpx.HTTPError, RuntimeError) as exc:  # reported after the join
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed; first: {errors[0]!r}")
    return started


def _wait(probe: Callable[[], int], want: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while (got := probe()) < want:
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}: {got} of {want}")
        time.sleep(0.1)


def _events(db: Path) -> list[tuple[str, str, float]]:
    """(job id, event type, published_at) for every event on the relay's bus."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
        rows = connection.execute("SELECT event, type, published_at FROM events ORDER BY seq").fetchall()
    return [(json.loads(event)["subject"], kind, at) for event, kind, at in rows]


def _event_count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
            return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


class _Run(NamedTuple):
    """One relay run: when job i was due (``due(i)``; at once in a flood) and submitted, the job ids,
    callback arrivals, the events, the relay process's CPU seconds by thread group, and its log's warnings."""

    due: Callable[[int], float]
    started: dict[int, float]
    job_ids: dict[int, str]
    arrivals: dict[str, float]
    events: list[tuple[str, str, float]]
    cpu: dict[str, float]
    warnings: dict[str, int]


def _relay_run(jobs: int, speed: float, clients: int, data_dir: Path, timeout: float, workers: int,
               rate: float | None = None, media_processes: int | None = None) -> _Run:
    """A fresh relay process: one warm-up job, then ``jobs`` submits, all at once or ``rate`` a second."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    db, log = data_dir / "relay.sqlite3", data_dir.with_suffix(".log")
    job_ids: dict[int, str] = {}

    def submit(client: httpx.Client, index: int) -> None:
        answer = client.post("/v1/jobs", json=REQUEST, headers={"Idempotency-Key": f"bench-{index}"})
        if answer.status_code != 202:
            raise RuntimeError(f"submit {index}: {answer.status_code} {answer.text[:200]}")
        job_ids[index] = answer.json()["id"]

    with spawned([__file__, "--role", "relay", "--port", str(port), "--data-dir", str(data_dir),
                  "--speed", str(speed), "--workers", str(workers),
                  *(("--media-processes", str(media_processes)) if media_processes is not None else ())],
                 log=log) as server:
        wait_until_answers(f"{url}/healthz", server)
        _fan_out(1, 1, lambda c, _: submit(c, jobs), url, headers)  # warm-up: renders the one MP4
        _wait(lambda: _event_count(db), 1, timeout, "the warm-up job's event")
        cpu_before = httpx.get(f"{url}/bench/threads", timeout=30).json()
        start = time.time() + 0.5  # every client thread is up before the first job is due
        due = (lambda i: start + i / rate) if rate else (lambda i: start)
        started = _fan_out(jobs, clients, submit, url, headers, due=due)
        _wait(lambda: _event_count(db), jobs + 1, timeout, "every job's event")
        cpu_after = httpx.get(f"{url}/bench/threads", timeout=30).json()
        arrivals: dict[str, float] = httpx.get(f"{url}/bench/arrivals", timeout=30).json()
    return _Run(due, started, job_ids, arrivals, _events(db)[1:], cpu_by_group(cpu_before, cpu_after),
                _log_warnings(log))


def _latencies(run: _Run) -> tuple[list[float], list[float]]:
    """Callback→event and submit→event, in seconds, for every published job."""
    published = {job_id: at for job_id, _, at in run.events}
    callback_to_event = [published[j] - run.arrivals[j] for j in published if j in run.arrivals]
    submit_to_event = [published[run.job_ids[i]] - at for i, at in run.started.items()
                       if run.job_ids.get(i) in published]
    return callback_to_event, submit_to_event


def _outcomes(run: _Run) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for _, kind, _ in run.events:
        kinds[kind.rsplit(".", 1)[-1]] = kinds.get(kind.rsplit(".", 1)[-1], 0) + 1
    return kinds


def _ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 1)


def _cpu_figures(run: _Run, jobs: int, seconds: float) -> dict[str, Any]:
    """The relay process's CPU per job (its in-process sandbox's included), in all and by thread group, and
    how many cores it kept busy on average."""
    total = sum(run.cpu.values())
    return {"cpu_ms_per_job": round(total * 1000 / jobs, 1),
            "cpu_ms_per_job_by_thread": {group: round(cpu * 1000 / jobs, 1) for group, cpu in sorted(run.cpu.items())},
            "cpu_cores_busy": round(total / seconds, 2) if seconds > 0 else None}


def run_relay(jobs: int, speed: float, clients: int, tmp: Path, timeout: float, workers: int,
              media_processes: int | None = None) -> dict[str, Any]:
    """The flood: every job submitted at once; the relay's ceiling in jobs/s."""
    name = "relay" if media_processes is None else f"relay-media-{media_processes}"
    run = _relay_run(jobs, speed, clients, tmp / name, timeout, workers, media_processes=media_processes)
    callback_to_event, submit_to_event = _latencies(run)
    first, last = min(run.started.values()), max(at for _, _, at in run.events)
    return {"jobs": jobs, "seconds": round(last - first, 2), "jobs_per_s": round(jobs / (last - first), 1),
            "outcomes": _outcomes(run), "callbacks_seen": len(callback_to_event), "log_warnings": run.warnings,
            "slowest_submit_to_event_s": round(max(submit_to_event, default=0.0), 2),
            **_cpu_figures(run, jobs, last - first),
            "callback_to_event_p50_ms": _ms(callback_to_event, 50),
            "callback_to_event_p99_ms": _ms(callback_to_event, 99),
            "submit_to_event_p50_ms": _ms(submit_to_event, 50), "submit_to_event_p99_ms": _ms(submit_to_event, 99)}


def run_steady(rate: float, seconds: float, speed: float, clients: int, tmp: Path, timeout: float,
               workers: int) -> dict[str, Any]:
    """A steady offered load: ``rate`` jobs/s for ``seconds``, open loop, on a fresh relay."""
    jobs = max(2, round(rate * seconds))
    run = _relay_run(jobs, speed, clients, tmp / "steady", timeout, workers, rate=rate)
    callback_to_event, submit_to_event = _latencies(run)
    lag = [at - run.due(i) for i, at in run.started.items()]
    submits = sorted(run.started.values())
    publishes = sorted(at for _, _, at in run.events)
    window = max(publishes[-1] - submits[0], 1e-9)
    return {"jobs": jobs, "seconds": round(window, 2), "outcomes": _outcomes(run), "log_warnings": run.warnings,
            "callbacks_seen": len(callback_to_event), **_cpu_figures(run, jobs, window),
            "offered_jobs_per_s": round(rate, 2),
            "submitted_jobs_per_s": round((jobs - 1) / max(submits[-1] - submits[0], 1e-9), 2),
            "published_jobs_per_s": round((len(publishes) - 1) / max(publishes[-1] - publishes[0], 1e-9), 2),
            "submit_lag_p99_ms": _ms(lag, 99),
            **{f"callback_to_event_p{q}_ms": _ms(callback_to_event, q) for q in (50, 95, 99)},
            **{f"submit_to_event_p{q}_ms": _ms(submit_to_event, q) for q in (50, 95, 99)}}


def _log_warnings(log: Path) -> dict[str, int]:
    """How many log lines of each event name were warnings or errors (JSON lines from structlog)."""
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
            counts[str(entry.get("event"))] = counts.get(str(entry.get("event")), 0) + 1
    return counts


def run_sandbox(tasks: int, speed: float, clients: int, tmp: Path, timeout: float) -> dict[str, Any]:
    port, receiver_port = free_port(), free_port()
    url, receiver = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{receiver_port}"
    arrivals: dict[str, float] = {}

    def create(client: httpx.Client, index: int) -> None:
        answer = client.post("/v1/videos/generations", json={**REQUEST, "callback_url": f"{receiver}/cb/{index}"})
        if answer.status_code != 200:
            raise RuntimeError(f"create {index}: {answer.status_code} {answer.text[:200]}")

    def seen() -> int:
        arrivals.update(httpx.get(f"{receiver}/bench/arrivals", timeout=30).json())
        return len(arrivals)

    with spawned([__file__, "--role", "receiver", "--port", str(receiver_port)], log=tmp / "receiver.log") as rx, \
            spawned([__file__, "--role", "sandbox", "--port", str(port), "--data-dir", str(tmp / "sandbox"),
                     "--speed", str(speed)], log=tmp / "sandbox.log") as box:
        wait_until_answers(f"{receiver}/bench/arrivals", rx)
        wait_until_answers(f"{url}/healthz", box)
        headers = {"Authorization": "Bearer sk-evo-bench"}
        _fan_out(1, 1, lambda c, _: create(c, tasks), url, headers)  # warm-up: renders the one MP4
        _wait(seen, 1, timeout, "the warm-up callback")
        started = _fan_out(tasks, clients, create, url, headers)
        _wait(seen, tasks + 1, timeout, "every callback")
    latencies = [arrivals[str(i)] - at for i, at in started.items()]
    first, last = min(started.values()), max(arrivals[str(i)] for i in started)
    return {"tasks": tasks, "seconds": round(last - first, 2), "tasks_per_s": round(tasks / (last - first), 1),
            "create_to_callback_p50_ms": round(percentile(latencies, 50) * 1000, 1),
            "create_to_callback_p99_ms": round(percentile(latencies, 99) * 1000, 1)}


def measure(jobs: int, speed: float, clients: int, timeout: float, workers: int, steady_seconds: float,
            steady_rate: float | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        ceiling = run_sandbox(jobs, speed, clients, Path(tmp), timeout)
        relay = run_relay(jobs, speed, clients, Path(tmp), timeout, workers)
        in_threads = run_relay(jobs, speed, clients, Path(tmp), timeout, workers, media_processes=0)
        figures = {"jobs": jobs, "speed": speed, "clients": clients, "workers": workers, "relay": relay,
                   "sandbox": ceiling, "throughput_ratio": ratio(relay["jobs_per_s"], ceiling["tasks_per_s"]),
                   "all_published": relay["outcomes"].get("completed", 0) == jobs,
                   "relay_media_in_threads": in_threads,
                   "media_processes_speedup": ratio(relay["jobs_per_s"], in_threads["jobs_per_s"])}
        if steady_seconds > 0:
            rate = steady_rate or relay["jobs_per_s"] / 2
            figures.update(_steady_figures(run_steady(rate, steady_seconds, speed, clients, Path(tmp), timeout,
                                                      workers)))
    return figures


def _steady_figures(steady: dict[str, Any]) -> dict[str, Any]:
    """The steady run in full under ``steady``, its headline figures flat as ``steady_*``."""
    headline = ("offered_jobs_per_s", "submitted_jobs_per_s", "published_jobs_per_s", "submit_lag_p99_ms",
                *(f"{what}_p{q}_ms" for what in ("callback_to_event", "submit_to_event") for q in (50, 95, 99)))
    p99 = steady["callback_to_event_p99_ms"]
    return {"steady": steady, **{f"steady_{name}": steady[name] for name in headline},
            "steady_all_published": steady["outcomes"].get("completed", 0) == steady["jobs"],
            "steady_p99_target_ms": STEADY_P99_TARGET_MS, "steady_meets_target": p99 <= STEADY_P99_TARGET_MS}


def report(figures: dict[str, Any]) -> None:
    relay, box = figures["relay"], figures["sandbox"]
    rows = [["sandbox alone (ceiling)", box["tasks_per_s"], box["seconds"], "create→callback",
             box["create_to_callback_p50_ms"], "", box["create_to_callback_p99_ms"]],
            ["relay, embedded defaults", relay["jobs_per_s"], relay["seconds"], "callback→event",
             relay["callback_to_event_p50_ms"], "", relay["callback_to_event_p99_ms"]],
            ["", "", "", "submit→event", relay["submit_to_event_p50_ms"], "", relay["submit_to_event_p99_ms"]],
            ["relay / sandbox", figures["throughput_ratio"], "", "", "", "", ""]]
    if "relay_media_in_threads" in figures:
        threads = figures["relay_media_in_threads"]
        rows += [["relay, media read in the ingest threads", threads["jobs_per_s"], threads["seconds"],
                  "callback→event", threads["callback_to_event_p50_ms"], "", threads["callback_to_event_p99_ms"]],
                 ["media processes / in threads", figures["media_processes_speedup"], "", "", "", "", ""]]
    if "steady" in figures:
        steady = figures["steady"]
        met = "met" if figures["steady_meets_target"] else "NOT met"
        rows += [[f"steady load, offered {steady['offered_jobs_per_s']}/s", steady["published_jobs_per_s"],
                  steady["seconds"], "callback→event", *(steady[f"callback_to_event_p{q}_ms"] for q in (50, 95, 99))],
                 ["", "", "", "submit→event", *(steady[f"submit_to_event_p{q}_ms"] for q in (50, 95, 99))],
                 [f"target callback→event p99 ≤ {STEADY_P99_TARGET_MS:.0f} ms", met, "", "", "", "", ""]]
    emit("pipeline", ["run", "jobs/s", "s", "latency", "p50 ms", "p95 ms", "p99 ms"], rows, figures)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _not_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 jobs, then 5 s of steady load")
    parser.add_argument("--jobs", type=int, default=None, help="jobs (and sandbox tasks); default 1000")
    parser.add_argument("--speed", type=float, default=1000.0, help="sandbox speed (1000: a 4 s 480p task runs 86 ms)")
    parser.add_argument("--clients", type=int, default=8, help="submitting threads")
    parser.add_argument("--workers", type=int, default=2, help="RELAY_WORKERS, ingest threads (embedded default 2)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the last event")
    parser.add_argument("--steady-seconds", type=_not_negative, default=None,
                        help="seconds of steady load after the flood (default 30, 5 with --quick; 0 skips it)")
    parser.add_argument("--steady-rate", type=_positive, default=None,
                        help="jobs/s offered in the steady load (default half the jobs/s the flood reached)")
    parser.add_argument("--role", choices=("driver", "relay", "sandbox", "receiver"), default="driver",
                        help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--media-processes", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "relay":
        serve_relay(args.port, args.data_dir, args.speed, args.workers, args.media_processes)
    elif args.role == "sandbox":
        serve_sandbox(args.port, args.data_dir, args.speed)
    elif args.role == "receiver":
        serve_receiver(args.port)
    else:
        jobs = args.jobs or (20 if args.quick else 1000)
        steady_seconds = args.steady_seconds if args.steady_seconds is not None else (5.0 if args.quick else 30.0)
        figures = measure(jobs, args.speed, args.clients, args.timeout, args.workers, steady_seconds,
                          args.steady_rate)
        report(figures)
        return figures
    return {}


if __name__ == "__main__":
    main()
