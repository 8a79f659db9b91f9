"""What ``submit --batch`` shows: one progress bar on a terminal (else a plain line per change, on stderr), then a
summary table of every line and the counts and credits (stdout), or JSON lines with ``--json``."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from handlers.domain.lifecycle import TERMINAL, JobStatus

__all__ = ["FAILED", "FINAL", "BarReport", "LineReport", "LineResult", "Report", "job_result", "report_for",
           "summary", "summary_json"]

FINAL = frozenset(status.value for status in TERMINAL)
FAILED = frozenset({"invalid", "refused", "error", *(FINAL - {JobStatus.PUBLISHED.value})})
"""The statuses of a failed line: never sent (``invalid``), an error answer (``refused``), the relay unreachable or
unreadable (``error``), or a job that ended other than published."""


@dataclass(frozen=True, slots=True)
class LineResult:
    """What became of one line: its job's status (or ``invalid``, ``refused``, ``error``, ``estimated``,
    ``not_sent``), the job id, the error code and message of a failure, and the credits."""

    line: int
    status: str
    job_id: str | None = None
    code: str | None = None
    message: str | None = None
    estimated: float | None = None
    used: float | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def job_result(line: int, job: Mapping[str, Any]) -> LineResult:
    """The result of ``line`` whose job is now ``job`` (as the API shows it)."""
    status = str(job["status"])
    error, credits = job.get("error") or {}, job.get("credits") or {}
    failed = status in FAILED
    return LineResult(line, status, job_id=str(job["id"]), code=(error.get("code") or status) if failed else None,
                      message=error.get("message") if failed else None, estimated=credits.get("estimated"),
                      used=credits.get("used"))


class Report(Protocol):
    """Progress as lines move: ``changed`` when a line's job moves on, ``finished`` when the line is done."""

    def changed(self, line: int, job: Mapping[str, Any]) -> None: ...

    def finished(self, result: LineResult) -> None: ...

    def close(self) -> None: ...


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{count} {status}" for status, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


class BarReport:
    """One bar over all the lines, redrawn in place, with the counts of how the finished lines ended."""

    def __init__(self, total: int, console: Console) -> None:
        self._done: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._progress = Progress(TextColumn("lines"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                  TextColumn("{task.description}"), console=console)
        self._task = self._progress.add_task("", total=total)
        self._progress.start()

    def changed(self, line: int, job: Mapping[str, Any]) -> None:
        """Nothing to draw: the bar counts finished lines."""

    def finished(self, result: LineResult) -> None:
        with self._lock:
            self._done[result.status] += 1
            self._progress.update(self._task, advance=1, description=_counts(self._done))

    def close(self) -> None:
        self._progress.stop()


class LineReport:
    """A plain line on stderr for every change, where no terminal can redraw a bar (a log, a pipe, CI)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def changed(self, line: int, job: Mapping[str, Any]) -> None:
        self._say(f"line {line}: {job['id']} {job['status']}")

    def finished(self, result: LineResult) -> None:
        self._say(f"line {result.line}: {_outcome(result)}")

    def close(self) -> None:
        """Nothing to close."""

    def _say(self, text: str) -> None:
        with self._lock:
            click.echo(text, err=True)


def report_for(total: int, console: Console) -> Report:
    """A bar on a terminal, plain lines elsewhere."""
    return BarReport(total, console) if console.is_terminal else LineReport()


def _outcome(result: LineResult) -> str:
    """``job_… published``, ``11.12 credits``, or ``invalid: invalid_json: …``."""
    if result.status == "estimated":
        return f"{result.estimated:g} credits"
    head = " ".join(part for part in (result.job_id, result.status) if part)
    return f"{head}: {_detail(result)}" if result.failed else head


def _detail(result: LineResult) -> str:
    return ": ".join(part for part in (result.code, result.message) if part)


# --- the summary ------------------------------------------------------------------------------------


def _credits(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _total(values: list[float | None]) -> float:
    return round(sum(v for v in values if v is not None), 2)


def summary(results: list[LineResult]) -> list[str]:
    """The table (a row per line) and the totals: counts by status, failures by code, credits."""
    if any(r.status == "estimated" for r in results):
        return _estimate_summary(results)
    rows = [("LINE", "STATUS", "JOB", "USED", "ESTIMATED", "DETAIL")]
    rows += [(str(r.line), r.status, r.job_id or "-", _credits(r.used), _credits(r.estimated),
              _detail(r) if r.failed else "") for r in results]
    return [*_table(rows), _counts_line(results),
            f"credits: {_total([r.used for r in results]):g} used, {_total([r.estimated for r in results]):g} "
            "estimated"]


def _estimate_summary(results: list[LineResult]) -> list[str]:
    rows = [("LINE", "CREDITS", "DETAIL")]
    rows += [(str(r.line), _credits(r.estimated), _detail(r)) for r in results]
    estimated = [r for r in results if r.status == "estimated"]
    total = f"total: {_total([r.estimated for r in estimated]):g} credits for {len(estimated)} " \
            f"line{'s' if len(estimated) != 1 else ''} (estimate; nothing was submitted)"
    failed = [r for r in results if r.failed]
    return [*_table(rows), total + (f"; {_failures(failed)}" if failed else "")]


def _counts_line(results: list[LineResult]) -> str:
    done = Counter(r.status for r in results if not r.failed)
    failed = [r for r in results if r.failed]
    parts = [_counts(done)] if done else []
    parts += [_failures(failed)] if failed else []
    return f"{len(results)} line{'s' if len(results) != 1 else ''}: " + ", ".join(parts)


def _failures(failed: list[LineResult]) -> str:
    codes = Counter(r.code or r.status for r in failed)
    return f"{len(failed)} failed (" + ", ".join(f"{code} {n}" for code, n in sorted(codes.items())) + ")"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
            for row in rows]


def summary_json(results: list[LineResult]) -> list[str]:
    """A JSON line per line, then one ``{"summary": …}`` line with the counts and credit totals."""
    lines = [json.dumps(r.as_dict(), separators=(",", ":")) for r in results]
    totals = {"lines": len(results), "failed": sum(r.failed for r in results),
              "statuses": dict(Counter(r.status for r in results)),
              "codes": dict(Counter(r.code for r in results if r.failed and r.code)),
              "credits": {"used": _total([r.used for r in results]),
                          "estimated": _total([r.estimated for r in results])}}
    return [*lines, json.dumps({"summary": totals}, separators=(",", ":"))]
