"""``seedance-relay jobs list|show`` (through the API) and ``dlq list|redrive`` (on the backend)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from handlers.cli.remote import relay_client
from handlers.jobs import JobStatus
from handlers.ports import WorkQueue
from handlers.settings import Settings

__all__ = ["dlq", "jobs"]

_relay_url = click.option("--relay-url", envvar="RELAY_URL", help="The relay [env RELAY_URL].")
_api_key = click.option("--api-key", envvar="RELAY_API_KEY", help="Bearer key [env RELAY_API_KEY].")


@click.group()
def jobs() -> None:
    """Look at jobs on a running relay."""


@jobs.command("list")
@click.option("--status", type=click.Choice([s.value for s in JobStatus]))
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per job.")
@_relay_url
@_api_key
def list_jobs(status: str | None, limit: int, as_json: bool, relay_url: str | None, api_key: str | None) -> None:
    """The newest jobs first."""
    client = relay_client(relay_url, api_key)
    try:
        params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
        page = client.call("GET", "/v1/jobs", params=params)
    finally:
        client.close()
    for job in page["jobs"]:
        if as_json:
            click.echo(json.dumps(job, separators=(",", ":")))
        else:
            error = f"  {job['error']['code']}" if job.get("error") else ""
            click.echo(f"{job['id']}  {job['status']:<10} {job['progress']:>3}%  {job['model']}{error}")


@jobs.command("show")
@click.argument("job_id")
@_relay_url
@_api_key
def show_job(job_id: str, relay_url: str | None, api_key: str | None) -> None:
    """One job as JSON."""
    client = relay_client(relay_url, api_key)
    try:
        click.echo(json.dumps(client.call("GET", f"/v1/jobs/{job_id}"), indent=2))
    finally:
        client.close()


@click.group()
def dlq() -> None:
    """Dead-letter queues of the ingest queue and every subscriber (local or AWS backend)."""


class _Closer:
    def __init__(self, closers: list[Callable[[], None]]) -> None:
        self.closers = closers

    def close(self) -> None:
        for close in self.closers:
            close()


def _queues(settings: Settings) -> tuple[_Closer, dict[str, WorkQueue]]:
    from handlers.wiring import build_ports

    _, _, ingest, bus, closers = build_ports(settings)
    queues = {"ingest": ingest}
    queues.update({f"subscriber:{name}": bus.subscriber(name) for name, _ in settings.subscribers})
    return _Closer(closers), queues


@dlq.command("list")
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


@dlq.command("redrive")
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
