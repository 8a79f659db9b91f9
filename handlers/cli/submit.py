"""``seedance-relay submit``: a job from a request file or flags, local files uploaded first; ``--estimate`` prints
what it would cost instead (``POST /v1/estimates``) and submits nothing."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from handlers.base.errors import InvalidRequest
from handlers.base.jsonbody import parse_object
from handlers.cli.batch import MAX_CONCURRENCY, read_batch, submit_batch
from handlers.cli.batch_report import FINAL
from handlers.cli.references import MEDIA, checked, uploaded
from handlers.cli.remote import RelayClient, relay_client
from handlers.domain.contract import ALL_MODELS, ASPECT_RATIOS, STANDARD_QUALITIES
from handlers.domain.jobrequest import CANCEL_AFTER_MAX, JobRequest, check_cancel_after, parse_job_request

__all__ = ["FINAL", "generation_label", "submit"]

DEFAULT_CONCURRENCY = 4
_GENERATED = frozenset({"stored", "published"})  # the provider's part is done


def _read_file(file: Path) -> JobRequest:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise click.BadParameter(f"{file}: cannot be read ({exc.strerror})", param_hint="FILE") from exc
    try:
        request = parse_job_request(raw)
    except InvalidRequest as exc:
        reason = "; ".join(v.message for v in exc.violations)
        raise click.BadParameter(f"{file} is not a request: {reason} (see `seedance-relay validate {file}`)",
                                 param_hint="FILE") from exc
    if problems := check_cancel_after(request.cancel_after):
        raise click.BadParameter(f"{file}: {problems[0].message}", param_hint="FILE")
    return request


def _metadata(raw: str) -> dict[str, Any]:
    example = "e.g. --metadata '{\"order\": 1}'"
    try:
        value = parse_object(raw, what="--metadata", strict=True)
    except InvalidRequest as exc:
        raise click.BadParameter(f"must be a JSON object, {example}; {exc.violations[0].message}",
                                 param_hint="--metadata") from exc
    return value


def _request(client: RelayClient, file: Path | None, options: dict[str, Any]) -> dict[str, Any]:
    """The body of ``POST /v1/jobs``: the file's request and relay options, flags winning, local files uploaded."""
    request = _read_file(file) if file else JobRequest(body={})
    body, metadata = request.body, request.metadata
    if options.get("metadata"):
        metadata = _metadata(options["metadata"])
    cancel_after = request.cancel_after if options.get("cancel_after") is None else options["cancel_after"]
    for name in ("model", "prompt", "duration", "quality", "aspect_ratio"):
        if options.get(name) is not None:
            body[name] = options[name]
    references = {}
    for limits, flag in MEDIA:
        if options[limits.kind]:
            references[limits.array] = checked(list(options[limits.kind]), limits, flag)
        elif isinstance(body.get(limits.array), list):
            references[limits.array] = checked(body[limits.array], limits, f"FILE {limits.array}")
    body.update({array: uploaded(client, values) for array, values in references.items()})
    return {**body, **({"metadata": metadata} if metadata != {} else {}),
            **({"cancel_after": cancel_after} if cancel_after is not None else {})}


@click.command(short_help="Submit a generation job to a running relay.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
@click.option("--model", type=click.Choice(ALL_MODELS), help="Model id (default: the file's).")
@click.option("--prompt", help="What to generate; name references as image 1 or @image1.")
@click.option("--duration", type=int, help="Seconds, 4-15.")
@click.option("--quality", type=click.Choice(STANDARD_QUALITIES), help="Output resolution.")
@click.option("--aspect-ratio", "aspect_ratio", type=click.Choice(ASPECT_RATIOS), help="Output aspect ratio.")
@click.option("--image", multiple=True, help="Reference image: URL or local file (repeatable, up to 9).")
@click.option("--video", multiple=True, help="Reference video: URL or local file (repeatable, up to 3).")
@click.option("--audio", multiple=True, help="Reference audio: URL or local file (repeatable, up to 3).")
@click.option("--metadata", help='A JSON object carried into every event, e.g. \'{"order": 1}\'.')
@click.option("--cancel-after", "cancel_after", type=click.IntRange(1, CANCEL_AFTER_MAX), metavar="SECONDS",
              help=f"Cancel the job if it has not ended this many seconds after it is accepted, 1-{CANCEL_AFTER_MAX} "
                   "(a week); default: the file's cancel_after, else no deadline.")
@click.option("--idempotency-key", help="Repeat-safe key; a repeat returns the same job. With --batch: the batch's "
                                       "name, from which each line's key derives (default: the file's path).")
@click.option("--batch", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A JSON Lines file: one request a line (as FILE holds one), each its own job. Running the same "
                   "file again submits nothing twice.")
@click.option("--concurrency", type=click.IntRange(1, MAX_CONCURRENCY),
              help=f"With --batch: lines in flight at once, 1-{MAX_CONCURRENCY} (default {DEFAULT_CONCURRENCY}).")
@click.option("--wait", is_flag=True, help="Follow the job (generation, then copy) until it is final.")
@click.option("--estimate", "only_estimate", is_flag=True,
              help="Print what the job would cost in credits (the relay's POST /v1/estimates) and submit nothing; "
                   "local files are still uploaded, so the relay can read their length.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON lines; the last one is the final job (with --batch: one per line, then the summary).")
@click.option("--relay-url", help="The relay [env RELAY_URL, default http://127.0.0.1:8000].")
@click.option("--api-key", help="Bearer key [env RELAY_API_KEY].")
def submit(file: Path | None, wait: bool, as_json: bool, relay_url: str | None, api_key: str | None,
           idempotency_key: str | None, only_estimate: bool, batch: Path | None, concurrency: int | None,
           **options: Any) -> None:
    """Submit a generation job (FILE, flags, or both; flags win) to a running relay.

    Local files given as references are uploaded first. Exits 0 for a published job (or an
    accepted one without --wait, or an estimate), 1 for a failed one or an error answer, 2 for bad flags.
    With --batch, one job per line of a JSON Lines file, a summary at the end, and exit 1 if any line failed.
    """
    if only_estimate and wait:
        raise click.UsageError("--estimate submits nothing, so there is nothing to --wait for; leave one out")
    if batch is not None:
        _refuse_single_job_options(file, options)
        lines = read_batch(batch, idempotency_key or str(batch.resolve()))
        client = relay_client(relay_url, api_key)
        try:
            code = submit_batch(client, lines, concurrency=concurrency or DEFAULT_CONCURRENCY, wait=wait,
                                estimate=only_estimate, as_json=as_json)
        finally:
            client.close()
        sys.exit(code)
    if concurrency is not None:
        raise click.UsageError("--concurrency applies to --batch only")
    client = relay_client(relay_url, api_key)
    try:
        body = _request(client, file, options)
        if only_estimate:
            _show_estimate(client.call("POST", "/v1/estimates", json=body), as_json)
            return
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        job = client.call("POST", "/v1/jobs", json=body, headers=headers)  # a 422 (rejected) is an error answer
        _emit(job, as_json)
        if wait and job.get("status") not in FINAL:
            job = _follow(client, job, as_json)
    finally:
        client.close()
    if not as_json:
        _summary(job)
    sys.exit(0 if job.get("status") == "published" or (not wait and job.get("status") not in FINAL) else 1)


def _refuse_single_job_options(file: Path | None, options: dict[str, Any]) -> None:
    given = ["FILE"] if file else []
    given += [f"--{name.replace('_', '-')}" for name, value in options.items() if value not in (None, ())]
    if given:
        raise click.UsageError(f"--batch takes every request from its lines; leave out {', '.join(given)}")


def _show_estimate(answer: dict[str, Any], as_json: bool) -> None:
    """The relay's estimate: one JSON line, or the credits, a line per item and the assumptions."""
    if as_json:
        click.echo(json.dumps(answer, separators=(",", ":")))
        return
    click.echo(f"{answer['credits']:g} credits (estimate; nothing was submitted)")
    for line in answer["breakdown"]:
        per_second = line["seconds"] is not None and line["rate"] is not None
        how = f"{line['seconds']:g} s x {line['rate']:g} = " if per_second else ""
        click.echo(f"  {line['what']}: {how}{line['credits']:g}")
    for assumption in answer["assumptions"]:
        click.echo(f"  assumed: {assumption}")


def _emit(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(job, separators=(",", ":")))


def _follow(client: RelayClient, first: dict[str, Any], as_json: bool) -> dict[str, Any]:
    job_id = first["id"]
    if as_json:
        return _follow_json(client, first)
    columns = (TextColumn("{task.description:<12}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        generation = progress.add_task("queued", total=100)
        copy = progress.add_task("copying", total=1, visible=False)
        while True:
            job: dict[str, Any] = client.call("GET", f"/v1/jobs/{job_id}")
            progress.update(generation, completed=job["progress"], description=generation_label(job))
            if job["progress"] >= 100 or job["status"] in _GENERATED or job["status"] in FINAL:
                progress.update(copy, visible=True, completed=1 if job["outputs"] or job["status"] in FINAL else 0)
            if job["status"] in FINAL:
                return job
            time.sleep(1.0)


def generation_label(job: dict[str, Any]) -> str:
    """The first bar's label: ``queued``, ``generating``, ``completed``, or how the job ended."""
    status = job["status"]
    if status in _GENERATED or (status not in FINAL and job["progress"] >= 100):
        return "completed"
    if status in FINAL:
        return str(status)
    return "generating" if status == "processing" else "queued"


def _follow_json(client: RelayClient, first: dict[str, Any]) -> dict[str, Any]:
    last: tuple[str, int] | None = (first["status"], first["progress"])
    while True:
        job: dict[str, Any] = client.call("GET", f"/v1/jobs/{first['id']}")
        if (job["status"], job["progress"]) != last:
            last = (job["status"], job["progress"])
            if job["status"] not in FINAL:
                _emit(job, True)
        if job["status"] in FINAL:
            _emit(job, True)
            return job
        time.sleep(1.0)


def _summary(job: dict[str, Any]) -> None:
    click.echo(f"{job['id']}  {job['status']}" + (f"  task {job['task_id']}" if job.get("task_id") else ""))
    for output in job.get("outputs", []):
        click.echo(f"  {output['uri']}  {output['size']:,} bytes  sha256 {output['sha256']}")
    if job.get("error"):
        click.echo(f"  error: {job['error'].get('code')}: {job['error'].get('message')}")
