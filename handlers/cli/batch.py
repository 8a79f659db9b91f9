"""``seedance-relay submit --batch FILE.jsonl``: one job per line, run a few at a time.

Each line is a request as ``submit FILE.json`` takes it (local files included). A line that is
not one (not JSON, not an object, bad ``metadata``, a local file that cannot be sent) is reported
with its number and never sent; the other lines still run.

Each line is sent with an ``Idempotency-Key`` of ``batch:`` and the sha256 of: the batch's name
(the file's resolved path, or ``--idempotency-key`` when given), the line's request as canonical
JSON, how many identical requests come before it in the file, and the sha256 of each local file
it names. So running the same file again submits nothing twice, whatever lines were added,
removed or moved around it; identical lines are separate jobs; an edited line, or a changed
local file, is a new job. A line's ``cancel_after`` is not part of its key, as it is no part of
what the relay compares: a line whose deadline alone changed is the same job, with its first deadline.

A line with local files is uploaded again on every run, and its upload URLs differ each time, so
the relay answers the repeat ``409 idempotency_key_reused``, naming the earlier job (``job_id``), which
is then read (``GET /v1/jobs/{id}``). A relay whose 409 names no job (an older one) has the job found
among the caller's jobs by its key instead (``GET /v1/jobs``, read page by page as far as needed, once
a run).
"""

from __future__ import annotations

import codecs
import hashlib
import threading
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import httpx
from rich.console import Console

from handlers.base.errors import InvalidRequest
from handlers.cli.batch_report import FINAL, LineResult, Report, job_result, report_for, summary, summary_json
from handlers.cli.references import checked_arrays, digests, uploaded_arrays
from handlers.cli.remote import RelayAnswer, RelayClient
from handlers.domain.jobrequest import check_cancel_after, check_metadata, parse_job_request
from handlers.domain.jobs import canonical_json

__all__ = ["KEY_PREFIX", "MAX_CONCURRENCY", "Batch", "BatchLine", "line_key", "read_batch", "run_batch",
           "submit_batch"]

KEY_PREFIX = "batch:"
MAX_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One request line: its request (local files as :class:`Path`) and key, or why it cannot be sent."""

    number: int
    body: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    problem: str | None = None
    code: str | None = None
    files: int = 0


def line_key(name: str, request: str, occurrence: int, files: list[str]) -> str:
    """The ``Idempotency-Key`` of the ``occurrence``-th line of batch ``name`` holding ``request`` (canonical
    JSON) with local files of sha256 ``files``."""
    basis = "\x00".join([name, request, str(occurrence), *files])
    return KEY_PREFIX + hashlib.sha256(basis.encode()).hexdigest()


def read_batch(path: Path, name: str) -> list[BatchLine]:
    """Every non-blank line of ``path``, checked; ``click.BadParameter`` for a file with nothing to run."""
    try:
        raw = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    except OSError as exc:
        raise click.BadParameter(f"{path}: cannot be read ({exc.strerror})", param_hint="--batch") from exc
    seen: Counter[str] = Counter()
    lines = [_read_line(number, text.strip(), name, seen)
             for number, text in enumerate(raw.split(b"\n"), start=1) if text.strip()]
    if not lines:
        raise click.BadParameter(f"{path} holds no requests; a batch is one JSON request a line",
                                 param_hint="--batch")
    return lines


def _read_line(number: int, text: bytes, name: str, seen: Counter[str]) -> BatchLine:
    try:
        request = parse_job_request(text)
    except InvalidRequest as exc:
        return _bad(number, exc)
    if problems := check_metadata(request.metadata) + check_cancel_after(request.cancel_after):
        return _bad(number, InvalidRequest(problems))
    try:
        body = checked_arrays(request.body)
    except click.BadParameter as exc:
        return BatchLine(number, problem=f"{exc.param_hint}: {exc.message}", code="invalid_file")
    canonical = canonical_json({"request": request.body, "metadata": request.metadata})
    seen[canonical] += 1
    files = digests(body)
    full = {**body, **({"metadata": request.metadata} if request.metadata != {} else {}),
            **({"cancel_after": request.cancel_after} if request.cancel_after is not None else {})}
    return BatchLine(number, full, line_key(name, canonical, seen[canonical], files), files=len(files))


def _bad(number: int, exc: InvalidRequest) -> BatchLine:
    reason = "; ".join(f"{v.field}: {v.message}" if v.field != "$" else v.message for v in exc.violations)
    return BatchLine(number, problem=reason, code=exc.violations[0].code)


class _EarlierJobs:
    """The caller's jobs of batch lines by their key, read page by page from ``GET /v1/jobs`` as far as the
    keys asked for need (once for the whole run)."""

    def __init__(self, client: RelayClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._cursor: str | None = None
        self._read_all = False

    def find(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            while key not in self._jobs and not self._read_all:
                self._next_page()
            return self._jobs.get(key)

    def _next_page(self) -> None:
        params: dict[str, Any] = {"limit": 100, **({"cursor": self._cursor} if self._cursor else {})}
        page = self._client.call("GET", "/v1/jobs", params=params)
        self._jobs.update({job["idempotency_key"]: job for job in page["jobs"]
                           if str(job.get("idempotency_key")).startswith(KEY_PREFIX)})
        self._cursor = page.get("next_cursor")
        self._read_all = not self._cursor


@dataclass
class Batch:
    """How to run the lines: follow each job to the end (``wait``) or only estimate it (``estimate``)."""

    client: RelayClient
    report: Report
    wait: bool = False
    estimate: bool = False
    poll_every: float = 1.0
    stop: threading.Event = field(default_factory=threading.Event)
    earlier: _EarlierJobs = field(init=False)

    def __post_init__(self) -> None:
        self.earlier = _EarlierJobs(self.client)

    def line(self, line: BatchLine) -> LineResult:
        """What became of ``line``: its job (or estimate), or the error the relay answered."""
        try:
            body = uploaded_arrays(self.client, line.body)
            if self.estimate:
                answer = self.client.call("POST", "/v1/estimates", json=body)
                return LineResult(line.number, "estimated", estimated=answer["credits"],
                                  message="; ".join(f"assumed: {a}" for a in answer["assumptions"]) or None)
            job = self._submitted(line, body)
            return job_result(line.number, self._followed(line.number, job) if self.wait else job)
        except RelayAnswer as exc:
            status = "rejected" if exc.status == 422 else "refused"  # 422: the provider rejected the job
            return LineResult(line.number, status, code=str(exc.error.get("code")), message=_answer(exc.error))
        except (click.ClickException, httpx.HTTPError, OSError) as exc:
            message = exc.message if isinstance(exc, click.ClickException) else str(exc)
            return LineResult(line.number, "error", code="relay_error", message=message)

    def _submitted(self, line: BatchLine, body: dict[str, Any]) -> dict[str, Any]:
        try:
            job: dict[str, Any] = self.client.call("POST", "/v1/jobs", json=body,
                                                   headers={"Idempotency-Key": line.key})
        except RelayAnswer as exc:
            earlier = self._earlier(line, exc)
            if earlier is None:
                raise
            job = earlier
        if self.wait and job["status"] not in FINAL:
            self.report.changed(line.number, job)  # without --wait, the line is done: finished() says it
        return job

    def _earlier(self, line: BatchLine, exc: RelayAnswer) -> dict[str, Any] | None:
        """The job an earlier run made for a line with local files (their upload URLs changed since): the one the
        409 names, else (a relay that names none) the caller's job with the line's key."""
        if exc.status != 409 or exc.error.get("code") != "idempotency_key_reused" or not line.files:
            return None
        job_id = exc.error.get("job_id")
        if isinstance(job_id, str) and job_id:
            job: dict[str, Any] = self.client.call("GET", f"/v1/jobs/{quote(job_id, safe='')}")
            return job
        return self.earlier.find(line.key)

    def _followed(self, number: int, job: dict[str, Any]) -> dict[str, Any]:
        while job["status"] not in FINAL and not self.stop.wait(self.poll_every):
            latest: dict[str, Any] = self.client.call("GET", f"/v1/jobs/{job['id']}")
            if latest["status"] != job["status"] and latest["status"] not in FINAL:
                self.report.changed(number, latest)
            job = latest
        return job


def _answer(error: Mapping[str, Any]) -> str:
    """An error answer on one line: its message, then each violation it lists that the message does not."""
    message = str(error.get("message"))
    violations = [f"{e.get('field')}: {e.get('message')}" for e in error.get("errors") or []]
    return "; ".join([message, *(v for v in violations if v not in message)])


def run_batch(batch: Batch, lines: list[BatchLine], concurrency: int) -> tuple[list[LineResult], bool]:
    """Every line's result in line order, at most ``concurrency`` lines in flight; and whether an interrupt
    (Ctrl-C) stopped the run early (lines not started then are ``not_sent``)."""
    results = {line.number: LineResult(line.number, "invalid", code=line.code, message=line.problem)
               for line in lines if line.problem is not None}
    for result in results.values():
        batch.report.finished(result)
    runnable = [line for line in lines if line.problem is None]
    pool = ThreadPoolExecutor(concurrency, thread_name_prefix="batch")
    futures: dict[Future[LineResult], BatchLine] = {pool.submit(batch.line, line): line for line in runnable}
    interrupted = False
    try:
        for future in as_completed(futures):
            results[futures[future].number] = _finished(batch.report, future.result())
    except KeyboardInterrupt:
        interrupted = True
        batch.stop.set()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for future, line in futures.items():
        if line.number not in results:
            done = future.done() and not future.cancelled()
            results[line.number] = future.result() if done else LineResult(line.number, "not_sent")
    return [results[number] for number in sorted(results)], interrupted


def _finished(report: Report, result: LineResult) -> LineResult:
    report.finished(result)
    return result


def submit_batch(client: RelayClient, lines: list[BatchLine], *, concurrency: int, wait: bool, estimate: bool,
                 as_json: bool) -> int:
    """Run ``lines``, show the progress and then the summary; the exit code: 0 when no line failed, 1 when one
    did, 130 when interrupted."""
    report = report_for(len(lines), Console(stderr=True))
    try:
        results, interrupted = run_batch(Batch(client, report, wait=wait, estimate=estimate), lines, concurrency)
    finally:
        report.close()
    for text in (summary_json if as_json else summary)(results):
        click.echo(text)
    if interrupted:
        click.echo("interrupted: the lines sent so far keep running; run the same command again to follow them "
                   "(nothing is submitted twice)", err=True)
        return 130
    return 1 if any(result.failed for result in results) else 0
