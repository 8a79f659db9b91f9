"""Run every benchmark (full mode unless ``--quick``) and write bench/results.json.

Each benchmark runs in its own process, one after another (never two at once: they would
measure each other), and its final JSON line is collected.

    python bench/run_all.py [--quick] [--only callback_ack,cold_start] [--out bench/results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import PYTHON, ROOT, last_json, python_env

__all__ = ["BENCHMARKS", "main"]

BENCHMARKS = ("callback_ack", "result_copy", "cold_start", "pipeline", "submit_latency", "aws_costs")
BENCH_DIR = Path(__file__).resolve().parent


def run(name: str, quick: bool) -> dict[str, Any]:
    """Run ``bench/<name>.py``, streaming its table to the terminal; returns its figures."""
    command = [PYTHON, str(BENCH_DIR / f"{name}.py"), *(["--quick"] if quick else [])]
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=python_env(), cwd=ROOT, check=False)
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        return {"bench": name, "error": f"exited {done.returncode}", "seconds": round(time.perf_counter() - started, 1)}
    return {**last_json(done.stdout), "wall_seconds": round(time.perf_counter() - started, 1)}


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's smallest configuration")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results.json")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    results = {"mode": "quick" if args.quick else "full", "machine": machine(),
               "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "benchmarks": {name: run(name, args.quick) for name in names}}
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {args.out}")
    failed = [n for n, r in results["benchmarks"].items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
