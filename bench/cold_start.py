"""Cold start: import time of each Lambda entry module in serverless.yml vs ``import boto3``.

Every sample is a fresh ``python -c`` process that times ``import <module>`` with
``perf_counter`` (the interpreter's own start-up is outside the figure), and the process's
whole wall time is kept beside it. Two views: **venv** imports with this virtualenv as it
is (what the target is judged on), **layer** hides the runtime dependencies that the
``deps`` Lambda layer leaves out (``pyproject.toml`` dependencies not in
``infra/layer-requirements.txt``: uvicorn, httptools, uvloop, click, rich, av), which is what a Lambda
container can import; structlog, for one, pulls in rich whenever it is installed. PyAV stays
hidden for ingest and reconcile too, though their ``media`` layer ships it: no entry imports it
at import time (tests/unit/test_lambda_layer.py), so their figures are the same either way.
Modules are measured round-robin, boto3 among them, so the noise of the machine falls on
all of them alike; the median of ``--runs`` samples is reported with its ratio to boto3's
median. One unmeasured pass first compiles the bytecode.

    python bench/cold_start.py [--quick] [--runs 15] [--importtime]

``--importtime`` also prints, for each module over target, the ten slowest imports it pulls
in (``python -X importtime``, cumulative microseconds), to show where to make them lazy.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import ROOT, emit, median, ratio, run_python

__all__ = ["BASELINE", "entry_modules", "main"]

BASELINE = "boto3"
TARGET_RATIO = 1.5
_PROBE = ("{prelude}import time; _t = time.perf_counter(); import {module}; "
          "print(round((time.perf_counter() - _t) * 1000, 3))")
_HIDE = ("import sys\n"
         "class _NotInLayer:\n"
         "    def find_spec(self, name, path=None, target=None):\n"
         "        if name.partition('.')[0] in {hidden!r}:\n"
         "            raise ModuleNotFoundError(f'{{name}} is not in the Lambda layer', name=name)\n"
         "sys.meta_path.insert(0, _NotInLayer())\n")
VIEWS = ("venv", "layer")


def entry_modules(serverless: Path = ROOT / "serverless.yml") -> list[str]:
    """The modules named by the ``handler:`` entries (``handlers/lambdas/api.handler`` → ``handlers.lambdas.api``)."""
    found = re.findall(r"^\s*handler:\s*['\"]?([\w./-]+)\.\w+['\"]?\s*$", serverless.read_text(), re.MULTILINE)
    return list(dict.fromkeys(path.replace("/", ".") for path in found))


def not_in_layer(root: Path = ROOT) -> set[str]:
    """Top-level names of the runtime dependencies that the Lambda layer does not ship."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    wanted = {re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    layer_file = root / "infra" / "layer-requirements.txt"
    shipped = {line.split("==")[0].strip().lower() for line in layer_file.read_text().splitlines()
               if line.strip() and not line.startswith("#")} if layer_file.exists() else wanted
    return {name.replace("-", "_") for name in wanted - shipped}


def sample(module: str, hidden: set[str]) -> tuple[float, float]:
    """(import ms, process wall ms) of one fresh interpreter importing ``module``."""
    prelude = _HIDE.format(hidden=sorted(hidden)) if hidden else ""
    started = time.perf_counter()
    done = run_python(["-c", _PROBE.format(prelude=prelude, module=module)], timeout=120)
    return float(done.stdout.strip().splitlines()[-1]), (time.perf_counter() - started) * 1000


def measure(modules: list[str], runs: int) -> dict[str, dict[str, float]]:
    """Per module: median import and process ms, and the ratio to boto3's, in both views."""
    hidden = {"venv": set(), "layer": not_in_layer()}
    subjects = [BASELINE, *modules]
    for module in subjects:
        sample(module, set())  # compile the bytecode, warm the page cache
    imports: dict[tuple[str, str], list[float]] = {(m, v): [] for m in subjects for v in VIEWS}
    walls: dict[tuple[str, str], list[float]] = {(m, v): [] for m in subjects for v in VIEWS}
    for _ in range(runs):
        for module in subjects:
            for view in VIEWS:
                import_ms, wall_ms = sample(module, hidden[view])
                imports[module, view].append(import_ms)
                walls[module, view].append(wall_ms)
    results: dict[str, dict[str, float]] = {}
    for module in subjects:
        results[module] = {}
        for view in VIEWS:
            base = median(imports[BASELINE, view])
            results[module] |= {f"{view}_import_ms": round(median(imports[module, view]), 1),
                                f"{view}_process_ms": round(median(walls[module, view]), 1),
                                f"{view}_ratio_to_boto3": ratio(median(imports[module, view]), base)}
    return results


def slowest_imports(module: str, count: int = 10) -> list[tuple[str, int]]:
    """The ``count`` imports with the largest cumulative time under ``python -X importtime -c 'import module'``."""
    done = run_python(["-X", "importtime", "-c", f"import {module}"], timeout=120)
    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)", line)
        if match:
            rows.append((match.group(4), int(match.group(2)), len(match.group(3))))
    return [(name, cumulative) for name, cumulative, _ in sorted(rows, key=lambda r: -r[1])[1:count + 1]]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per module")
    parser.add_argument("--runs", type=int, default=None, help="fresh processes per module (default 15)")
    parser.add_argument("--modules", default=None, help="comma-separated modules instead of serverless.yml's")
    parser.add_argument("--importtime", action="store_true", help="show the slowest imports of modules over target")
    args = parser.parse_args(argv)
    modules = args.modules.split(",") if args.modules else entry_modules()
    runs = args.runs or (3 if args.quick else 15)
    results = measure(modules, runs)
    over = [m for m in modules if results[m]["venv_ratio_to_boto3"] > TARGET_RATIO]
    if args.importtime:
        for module in over:
            print(f"\n{module}: slowest imports (cumulative ms)")
            for name, micros in slowest_imports(module):
                print(f"  {micros / 1000:8.1f}  {name}")
    rows = [[m, r["venv_import_ms"], r["venv_process_ms"], r["venv_ratio_to_boto3"], r["layer_import_ms"],
             r["layer_ratio_to_boto3"]] for m, r in results.items()]
    figures = {"runs": runs, "modules": results, "over_target": over, "meets_target": not over,
               "hidden_in_layer_view": sorted(not_in_layer()), "target": {"venv_ratio_to_boto3": f"<= {TARGET_RATIO}"}}
    emit("cold_start", ["module", "import ms", "process ms", "x boto3", "layer: import ms", "layer: x boto3"],
         rows, figures)
    return figures


if __name__ == "__main__":
    main()
