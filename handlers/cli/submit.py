"""``seedance-relay submit``: a job from a request file or flags, local files uploaded first."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from handlers.cli.remote import RelayAnswer, RelayClient, relay_client
from handlers.contract import ALL_MODELS, ASPECT_RATIOS, STANDARD_QUALITIES

__all__ = ["FINAL", "submit"]

FINAL = frozenset({"published", "failed", "cancelled", "rejected", "expired"})
_MEDIA = (("image", "image_urls"), ("video", "video_urls"), ("audio", "audio_urls"))


def _reference(client: RelayClient, value: str) -> str:
    """A URL as given, or a local file uploaded to the relay and replaced by its signed URL."""
    if "://" in value:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise click.BadParameter(f"{value!r} is neither a URL nor a readable file")
    return client.upload(path)


def _request(client: RelayClient, file: Path | None, options: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(file.read_text()) if file else {}
    if not isinstance(body, dict):
        raise click.BadParameter("the request file must hold a JSON object", param_hint="FILE")
    for name in ("model", "prompt", "duration", "quality", "aspect_ratio"):
        if options.get(name) is not None:
            body[name] = options[name]
    for flag, field in _MEDIA:
        if options[flag]:
            body[field] = [_reference(client, v) for v in options[flag]]
        elif field in body:
            body[field] = [_reference(client, v) for v in body[field]]
    if options.get("metadata"):
        body["metadata"] = json.loads(options["metadata"])
    return body


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
@click.option("--model", type=click.Choice(ALL_MODELS), help="Model id (default: the file's).")
@click.option("--prompt", help="What to generate; name references as image 1 or @image1.")
@click.option("--duration", type=int, help="Seconds, 4-15.")
@click.option("--quality", type=click.Choice(STANDARD_QUALITIES))
@click.option("--aspect-ratio", "aspect_ratio", type=click.Choice(ASPECT_RATIOS))
@click.option("--image", multiple=True, help="Reference image: URL or local file (repeatable, up to 9).")
@click.option("--video", multiple=True, help="Reference video: URL or local file (repeatable, up to 3).")
@click.option("--audio", multiple=True, help="Reference audio: URL or local file (repeatable, up to 3).")
@click.option("--metadata", help="A JSON object carried into every event.")
@click.option("--idempotency-key", help="Repeat-safe key; a repeat returns the same job.")
@click.option("--wait", is_flag=True, help="Follow the job with a progress bar until it is final.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines; the last one is the final job.")
@click.option("--relay-url", envvar="RELAY_URL", help="The relay [env RELAY_URL, default http://127.0.0.1:8000].")
@click.option("--api-key", envvar="RELAY_API_KEY", help="Bearer key [env RELAY_API_KEY].")
def submit(file: Path | None, wait: bool, as_json: bool, relay_url: str | None, api_key: str | None,
           idempotency_key: str | None, **options: Any) -> None:
    """Submit a generation job to a running relay."""
    client = relay_client(relay_url, api_key)
    try:
        body = _request(client, file, options)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        try:
            job = client.call("POST", "/v1/jobs", json=body, headers=headers)
        except RelayAnswer as exc:
            if exc.status != 422:
                raise
            job = exc.error  # rejected jobs come back as 422 with the job
        _emit(job, as_json)
        if wait and job.get("status") not in FINAL:
            job = _follow(client, job, as_json)
    finally:
        client.close()
    if not as_json:
        _summary(job)
    sys.exit(0 if job.get("status") == "published" or (not wait and job.get("status") not in FINAL) else 1)


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
        generation = progress.add_task("generating", total=100)
        copy = progress.add_task("copying", total=1, visible=False)
        while True:
            job: dict[str, Any] = client.call("GET", f"/v1/jobs/{job_id}")
            progress.update(generation, completed=job["progress"], description=job["status"])
            if job["progress"] >= 100 or job["status"] in ("stored", *FINAL):
                progress.update(copy, visible=True, completed=1 if job["outputs"] or job["status"] in FINAL else 0)
            if job["status"] in FINAL:
                return job
            time.sleep(1.0)


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
