"""Callback acknowledgement: ``POST /v1/callbacks/evolink/{job_id}?token=…`` vs a bare route.

One uvicorn server process, started the way ``seedance-relay serve`` starts it
(``tune_gc_for_serving()``, then ``uvicorn.run(app, log_level="warning")``: one worker,
uvloop + httptools, the project's dependencies; ``--http h11 --loop asyncio`` measures
uvicorn's pure-Python fallback instead), serves the relay's
app on embedded defaults (SQLite job store and queue in a fresh data dir) with one extra
route, ``POST /bare``, that reads the body and answers 200. So both routes run under the
same server, process and event loop. The relay's ingest workers are not started: this
measures the endpoint (size limit, token check, job lookup, JSON check, durable enqueue).

The load comes from another process: a closed-loop generator of ``--connections``
keep-alive HTTP/1.1 connections written on plain asyncio streams (stdlib only, so it costs
the server no GIL and little CPU). Rounds alternate bare/callback so the noise of this
machine lands on both; each ratio is taken within a round, the median over rounds reported.

    python bench/callback_ack.py [--quick] [--connections 32] [--seconds 5] [--rounds 5] [--http h11 --loop asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import emit, free_port, median, percentile, ratio, run_python, spawned, wait_until_answers

__all__ = ["CALLBACK_BODY", "main"]

TARGET_RATIO, TARGET_P99_MS = 0.5, 25.0
JOBS = 256
CALLBACK_BODY = json.dumps({
    "id": "task-unified-1795630973-vhypo3lm", "object": "video.generation.task", "created": 1795630973,
    "model": "seedance-2.0-reference-to-video", "status": "completed", "progress": 100, "type": "video",
    "task_info": {"can_cancel": False, "estimated_time": 86, "video_duration": 4},
    "usage": {"billing_rule": "per_second", "user_group": "default", "credits_reserved": 24, "credits_used": 24},
    "results": ["https://files.example.com/task-unified-1795630973-vhypo3lm/video.mp4?expires=1&sig=abc"],
}, separators=(",", ":")).encode()


# --- server role -------------------------------------------------------------------------------
def serve(port: int, data_dir: Path, paths_file: Path, http: str, loop: str) -> None:
    """The relay app on embedded defaults plus ``POST /bare``; writes the callback paths first."""
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from handlers.api import create_app
    from handlers.api.auth import ApiKeys
    from handlers.app.settings import Settings
    from handlers.app.wiring import build_relay
    from handlers.base.logs import configure
    from handlers.net.server import tune_gc_for_serving

    settings = Settings.from_env({"RELAY_DATA_DIR": str(data_dir), "RELAY_PORT": str(port)})
    configure(settings.log_level, "json")
    relay = build_relay(settings)

    async def bare(request: Request) -> Response:
        await request.body()
        return Response(status_code=200)

    paths = [_callback_path(relay, index) for index in range(JOBS)]
    paths_file.write_text(json.dumps(paths))
    app = create_app(relay, ApiKeys(("bench-key-0123456789",)), extra_routes=[Route("/bare", bare, methods=["POST"])])
    tune_gc_for_serving()  # as ``seedance-relay serve`` does
    if http == loop == "auto":  # as ``seedance-relay serve`` serves: its limits and protocol
        from handlers.net.server import server_config

        uvicorn.Server(server_config(app, host="127.0.0.1", port=port)).run()
    else:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", http=http, loop=loop)


def _callback_path(relay: Any, index: int) -> str:
    from handlers.domain.jobs import Job, JobStatus

    now = time.time()
    job = relay.jobs.create(Job(
        id=f"job_bench{index:021d}", request={"model": "seedance-2.0-reference-to-video", "prompt": "bench"},
        fingerprint="bench", created_at=now, updated_at=now, status=JobStatus.SUBMITTED,
        task_id="task-unified-1795630973-vhypo3lm", model="seedance-2.0-reference-to-video",
        submitted_at=now, estimated_time=86, check_at=now + 3600))
    parts = urlsplit(relay.callback_url(job.id))
    return f"{parts.path}?{parts.query}"


# --- client role -------------------------------------------------------------------------------
async def _connection(port: int, requests: list[bytes], stop_at: float, record_from: float,
                      latencies: list[float], failures: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    index = 0
    try:
        while (started := time.perf_counter()) < stop_at:
            writer.write(requests[index % len(requests)])
            index += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status, length = _parse_head(head)
            if length:
                await reader.readexactly(length)
            if started >= record_from:
                latencies.append(time.perf_counter() - started)
                if not 200 <= status < 300:
                    failures.append(status)
    finally:
        writer.close()


def _parse_head(head: bytes) -> tuple[int, int]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return status, int(value)
    raise RuntimeError(f"response without content-length: {head[:200]!r}")


def _request(port: int, path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _load(port: int, paths: list[str], connections: int, seconds: float, warmup: float) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[int] = []
    begin = time.perf_counter()
    record_from, stop_at = begin + warmup, begin + warmup + seconds
    tasks = [_connection(port, [_request(port, p, CALLBACK_BODY) for p in paths[i::connections] or paths],
                         stop_at, record_from, latencies, failures) for i in range(connections)]
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - record_from
    return {"requests": len(latencies), "seconds": round(elapsed, 3), "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50) * 1000, 2), "p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "max_ms": round(max(latencies, default=0.0) * 1000, 2), "failures": len(failures),
            "failure_statuses": sorted(set(failures))[:5]}


def load(port: int, paths_file: Path, target: str, connections: int, seconds: float, warmup: float) -> None:
    """Closed-loop load on ``/bare`` or the callback paths; prints one JSON line."""
    paths = ["/bare"] if target == "bare" else json.loads(paths_file.read_text())
    print(json.dumps(asyncio.run(_load(port, paths, connections, seconds, warmup))))


# --- driver ------------------------------------------------------------------------------------
def resolved(http: str, loop: str) -> dict[str, str]:
    """What uvicorn's ``auto`` picks here: httptools and uvloop when they are installed."""
    def have(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    return {"http": ("httptools" if have("httptools") else "h11") if http == "auto" else http,
            "loop": ("uvloop" if have("uvloop") else "asyncio") if loop == "auto" else loop}


def measure(*, connections: int, seconds: float, warmup: float, rounds: int, http: str, loop: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-callback-") as tmp:
        port, paths_file = free_port(), Path(tmp) / "paths.json"
        args = [__file__, "--role", "server", "--port", str(port), "--data-dir", str(Path(tmp) / "relay"),
                "--paths-file", str(paths_file), "--http", http, "--loop", loop]
        with spawned(args, log=Path(tmp) / "server.log") as server:
            wait_until_answers(f"http://127.0.0.1:{port}/healthz", server)
            results: dict[str, list[dict[str, Any]]] = {"bare": [], "callback": []}
            for round_ in range(rounds):
                for target in (("bare", "callback") if round_ % 2 == 0 else ("callback", "bare")):
                    done = run_python([__file__, "--role", "client", "--port", str(port), "--paths-file",
                                       str(paths_file), "--target", target, "--connections", str(connections),
                                       "--seconds", str(seconds), "--warmup", str(warmup)])
                    results[target].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return summarise(results, connections, resolved(http, loop))


def summarise(results: dict[str, list[dict[str, Any]]], connections: int, server: dict[str, str]) -> dict[str, Any]:
    pick = {t: {k: median([r[k] for r in rs]) for k in ("rps", "p50_ms", "p99_ms", "max_ms")}
            for t, rs in results.items()}
    ratios = [ratio(c["rps"], b["rps"]) for b, c in zip(results["bare"], results["callback"], strict=True)]
    figures = {
        "connections": connections, "server": server, "rounds": len(ratios), "throughput_ratio": median(ratios),
        "round_ratios": ratios, "bare": pick["bare"], "callback": pick["callback"],
        "failures": sum(r["failures"] for rs in results.values() for r in rs),
        "target": {"throughput_ratio": f">= {TARGET_RATIO}", "callback_p99_ms": f"< {TARGET_P99_MS}"},
    }
    figures["meets_target"] = figures["throughput_ratio"] >= TARGET_RATIO and pick["callback"]["p99_ms"] < TARGET_P99_MS
    return figures


def report(figures: dict[str, Any]) -> None:
    rows = [[t, figures[t]["rps"], figures[t]["p50_ms"], figures[t]["p99_ms"], figures[t]["max_ms"]]
            for t in ("bare", "callback")]
    rows.append(["callback / bare", figures["throughput_ratio"], "", "", ""])
    rows.append([f"server: {figures['server']['loop']} + {figures['server']['http']}", "", "", "", ""])
    emit("callback_ack", ["route", "req/s", "p50 ms", "p99 ms", "max ms"], rows, figures)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s per route")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per route and round")
    parser.add_argument("--warmup", type=float, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--http", choices=("auto", "h11", "httptools"), default="auto", help="uvicorn's HTTP parser")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="uvicorn's event loop")
    parser.add_argument("--role", choices=("driver", "server", "client"), default="driver", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--paths-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--target", choices=("bare", "callback"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    seconds = args.seconds or (1.0 if args.quick else 5.0)
    warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
    if args.role == "server":
        serve(args.port, args.data_dir, args.paths_file, args.http, args.loop)
        return {}
    if args.role == "client":
        load(args.port, args.paths_file, args.target, args.connections, seconds, warmup)
        return {}
    figures = measure(connections=args.connections, seconds=seconds, warmup=warmup,
                      rounds=args.rounds or (1 if args.quick else 5), http=args.http, loop=args.loop)
    report(figures)
    return figures


if __name__ == "__main__":
    main()
