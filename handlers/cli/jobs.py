"""``seedance-relay jobs list|show|cancel`` (through the API) and ``dlq list|redrive`` (on the backend)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import click

from handlers.app.settings import Settings
from handlers.cli.remote import RelayClient, relay_client
from handlers.domain.jobs import JobStatus
from handlers.ports import WorkQueue

__all__ = ["dlq", "jobs"]

_relay_url = click.option("--relay-url", help="The relay [env RELAY_URL, default http://127.0.0.1:8000].")
_api_key = click.option("--api-key", help="Bearer key [env RELAY_API_KEY].")


@click.group(short_help="Look at jobs on a running relay.")
def jobs() -> None:
    """Look at jobs on a running relay (RELAY_URL, RELAY_API_KEY)."""


_COLUMNS = ("ID", "STATUS", "PROGRESS", "CREATED (UTC)", "UPDATED (UTC)", "MODEL", "ERROR")
_WIDTHS = (30, 10, 8, 19, 19, 36, 0)


def _when(value: object) -> str:
    """An RFC 3339 time as ``2026-05-01 12:00:03`` (UTC), or ``-``."""
    return str(value)[:19].replace("T", " ") if value else "-"


def _row(job: dict[str, Any]) -> tuple[str, ...]:
    error = (job.get("error") or {}).get("code") or ""
    return (job["id"], job["status"], f"{job['progress']}%", _when(job.get("created_at")),
            _when(job.get("updated_at")), job["model"], error)


def _pages(client: RelayClient, params: dict[str, Any], every: bool) -> Iterator[list[dict[str, Any]]]:
    cursor: str | None = None
    while True:
        page = client.call("GET", "/v1/jobs", params={**params, **({"cursor": cursor} if cursor else {})})
        yield page["jobs"]
        cursor = page.get("next_cursor")
        if not every or not cursor:
            return


def _table(jobs: list[dict[str, Any]], header: bool) -> None:
    """Fixed-width columns, so the pages of ``--all`` line up under one header."""
    for row in ([_COLUMNS] if header else []) + [_row(job) for job in jobs]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, _WIDTHS, strict=True)).rstrip())


@jobs.command("list", short_help="The newest jobs first, as a table or JSON lines.")
@click.option("--status", type=click.Choice([s.value for s in JobStatus]), help="Only jobs in this status.")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True,
              help="Jobs per page (one page without --all).")
@click.option("--all", "every", is_flag=True, help="Page through every job, not only the newest page.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per job.")
@_relay_url
@_api_key
def list_jobs(status: str | None, limit: int, every: bool, as_json: bool, relay_url: str | None,
              api_key: str | None) -> None:
    """The newest jobs first: id, status, progress, times (UTC), model and error code."""
    client = relay_client(relay_url, api_key)
    params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
    try:
        for number, page in enumerate(_pages(client, params, every)):
            if as_json:
                for job in page:
                    click.echo(json.dumps(job, separators=(",", ":")))
            elif page or number == 0:
                _table(page, header=number == 0)
    finally:
        client.close()


@jobs.command("show", short_help="One job as JSON.")
@click.argument("job_id")
@_relay_url
@_api_key
def show_job(job_id: str, relay_url: str | None, api_key: str | None) -> None:
    """One job (JOB_ID, as jobs list shows it) as JSON."""
    client = relay_client(relay_url, api_key)
    try:
        click.echo(json.dumps(client.call("GET", f"/v1/jobs/{job_id}"), indent=2))
    finally:
        client.close()


@jobs.command("cancel", short_help="Cancel a job that has not ended.")
@click.argument("job_id")
@_relay_url
@_api_key
def cancel_job(job_id: str, relay_url: str | None, api_key: str | None) -> None:
    """Cancel JOB_ID (DELETE /v1/jobs/JOB_ID) and print it, now cancelled, as JSON.

    A queued or waiting job is cancelled at once; a running one by abandoning its task, which EvoLink
    may still bill (it has no cancel call). A job that has ended is refused (409 job_ended, exit 1).
    """
    client = relay_client(relay_url, api_key)
    try:
        click.echo(json.dumps(client.call("DELETE", f"/v1/jobs/{job_id}"), indent=2))
    finally:
        client.close()


@click.group(short_help="Dead-letter queues: list and redrive.")
def dlq() -> None:
    """Dead-letter queues of the ingest queue and every subscriber (local or AWS backend)."""


class _Closer:
    def __init__(self, closers: list[Callable[[], None]]) -> None:
        self.closers = closers

    def close(self) -> None:
        for close in self.closers:
            close()


def _queues(settings: Settings) -> tuple[_Closer, dict[str, WorkQueue]]:
    from handlers.app.wiring import build_ports

    _, _, ingest, bus, closers = build_ports(settings)
    queues = {"ingest": ingest}
    queues.update({f"subscriber:{name}": bus.subscriber(name) for name, _ in settings.subscribers})
    return _Closer(closers), queues


@dlq.command("list", short_help="Each queue's depth and dead letters, as JSON lines.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Dead letters shown per queue.")
def list_dead(limit: int) -> None:
    """Depth of each queue and the messages in its DLQ, as JSON lines."""
    relay, queues = _queues(Settings.from_env())
    try:
        for name, queue in queues.items():
            letters = [{"id": m.id, "receive_count": m.receive_count, "body": dict(m.body)}
                       for m in queue.dead_letters(limit)]
            click.echo(json.dumps({"queue": name, **queue.depth(), "dead_letters": letters}))
    finally:
        relay.close()


@dlq.command("redrive", short_help="Move dead letters back to their queue.")
@click.option("--queue", "only", help="Only this queue (ingest, or subscriber:NAME); default every queue.")
def redrive(only: str | None) -> None:
    """Move dead letters back to their queue for another try."""
    relay, queues = _queues(Settings.from_env())
    try:
        if only is not None and only not in queues:
            raise click.BadParameter(f"no queue {only!r}; known: {', '.join(queues)}", param_hint="--queue")
        for name, queue in queues.items():
            if only in (None, name):
                click.echo(json.dumps({"queue": name, "redriven": queue.redrive()}))
    finally:
        relay.close()
