"""What every benchmark shares: tables, the final JSON line, percentiles, subprocesses, moto.

Benchmarks never import from ``tests/``: the few lines they need from ``tests/support``
(moto in server mode, waiting for a server) are repeated here in the shape a benchmark wants.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from handlers.net.server import free_port

__all__ = [
    "FAKE_AWS",
    "PYTHON",
    "ROOT",
    "aws_env",
    "emit",
    "free_port",
    "human_bytes",
    "last_json",
    "load_fixture",
    "median",
    "parse_size",
    "percentile",
    "python_env",
    "ratio",
    "run_python",
    "running_moto",
    "spawned",
    "wait_until_answers",
]

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
PYTHON = sys.executable
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_HIDDEN_AWS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def load_fixture(relative: str) -> Any:
    """A JSON file from ``../shared/fixtures`` (kept there, never copied), as the tests load them."""
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


# --- figures -----------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 to 100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator else 0.0


def parse_size(text: str) -> int:
    """``100M``, ``1G``, ``512K`` or plain bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?\s*", text.upper())
    if match is None:
        raise ValueError(f"not a size: {text!r} (use e.g. 100M or 1G)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def emit(name: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], figures: Mapping[str, Any]) -> None:
    """Print a short table, then the figures as one JSON line (the last line of the output)."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{name}")
    for index, row in enumerate(cells):
        padded = (c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        print("  " + "  ".join(padded))
        if index == 0:
            print("  " + "  ".join("-" * w for w in widths))
    print(json.dumps({"bench": name, **figures}, sort_keys=True), flush=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def last_json(stdout: str) -> dict[str, Any]:
    """The last line of ``stdout`` that is a JSON object."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            value: dict[str, Any] = json.loads(line)
            return value
    raise ValueError(f"no JSON line in output:\n{stdout[-2000:]}")


# --- processes ---------------------------------------------------------------------------------
def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child Python: this one, the repository on the path, ``extra`` on top."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def run_python(args: Sequence[str], *, env: Mapping[str, str] | None = None,
               timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a fresh process; raises with its stderr if it fails."""
    done = subprocess.run([PYTHON, *args], capture_output=True, text=True, timeout=timeout,
                          env=python_env(env), cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


@contextmanager
def spawned(args: Sequence[str], *, env: Mapping[str, str] | None = None, log: Path | None = None,
            program: str = PYTHON, append: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    """``PROGRAM ARGS`` (python, unless told) in the background for the ``with`` block; terminated (then
    killed) after. Its output goes to ``log`` (added to it with ``append``), else nowhere."""
    sink = open(log, "ab" if append else "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen([program, *args], stdout=sink, stderr=sink, env=python_env(env), cwd=ROOT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        if log is not None:
            sink.close()  # type: ignore[union-attr]


def wait_until_answers(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers (any HTTP status); fail early if ``process`` died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited {process.returncode} before answering on {url}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answered on {url} within {timeout}s")
        time.sleep(0.05)


# --- moto --------------------------------------------------------------------------------------
MOTO_LAUNCH = """
import sys
sys.setswitchinterval(1.0)
from moto.core.common_models import BaseModel
BaseModel.__new__ = staticmethod(lambda cls, *args, **kwargs: super(BaseModel, cls).__new__(cls))
from moto.server import main
sys.exit(main())
"""
"""What the ``moto_server`` script runs (``python -c MOTO_LAUNCH -H HOST -p PORT``), with two changes, used by the
benchmarks and by the tests (tests/support/moto.py):

- A long GIL switch interval. moto's backends check a condition and then write without a lock, so under CPU
  contention two threads of its server could both pass a conditional write that AWS lets only one pass. With
  the long interval each request's pure-Python work finishes before another thread runs (waiting, as in a long
  poll, still lets the others in), which restores the atomicity the relay relies on.
- No instance tracking. moto keeps every model object it ever made (each S3 object version, SQS message,
  DynamoDB item…) in a class-level list, for its dashboard only, and never lets go. ``TransactWriteItems``
  deep-copies the whole table as its rollback copy, so each transaction added the table's every item to those
  lists: on the AWS soak moto's memory grew with the square of the jobs (850 MiB after 270 jobs, 22 GB after 968).
  Without the lists it grows with what the backends hold (155 MiB after 290 jobs). Nothing here reads the dashboard.
"""


def aws_env() -> dict[str, str]:
    """Fake credentials for moto, with any real profile or endpoint hidden."""
    env = {k: v for k, v in os.environ.items() if k not in _HIDDEN_AWS}
    env.update(FAKE_AWS)
    return env


@contextmanager
def running_moto(log: Path | None = None) -> Iterator[str]:
    """moto in server mode on ``127.0.0.1:<free port>``; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with spawned(["-c", MOTO_LAUNCH, "-H", "127.0.0.1", "-p", str(port)], env=aws_env(), log=log) as process:
        wait_until_answers(f"{url}/moto-api/", process, timeout=60.0)
        yield url
