"""``seedance-relay events``: ``tail`` prints the events on the local bus as JSON lines; ``replay``
re-delivers logged events to one subscriber (either backend)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from handlers.adapters.local import SqliteEventBus
from handlers.app.settings import Settings
from handlers.app.wiring import build_event_log, build_ports, subscriber_filters
from handlers.base.errors import InvalidRequest
from handlers.base.logs import configure
from handlers.domain.jobs import rfc3339
from handlers.usecases.replay import ReplayRequest, ReplaySummary, parse_since, replay

__all__ = ["events"]


@click.group(short_help="Look at published events, and replay them to a subscriber.")
def events() -> None:
    """Look at the events the relay published, and re-deliver them to a subscriber."""


@events.command(short_help="Print the events on the local bus as JSON lines.")
@click.option("--subscriber", default=None, help="Only the events this subscriber receives.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they arrive.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The relay's data folder [env RELAY_DATA_DIR, default ./.relay].")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.5, show_default=True,
              help="Seconds between looks with --follow.")
def tail(subscriber: str | None, follow: bool, data_dir: Path | None, interval: float) -> None:
    """Print the events on the local bus as JSON lines (oldest first) and exit."""
    settings = Settings.from_env(data_dir=data_dir)
    filters = subscriber_filters(settings)
    types = None
    if subscriber is not None:
        if subscriber not in filters:
            raise click.BadParameter(f"no subscriber {subscriber!r}; configured: {', '.join(filters)} "
                                     "(RELAY_SUBSCRIBERS)", param_hint="--subscriber")
        types = None if "*" in filters[subscriber] else filters[subscriber]
    database = settings.data_dir / "relay.sqlite3"
    if not database.exists():
        raise click.ClickException(f"no relay data at {settings.data_dir} (run `seedance-relay serve` first)")
    bus = SqliteEventBus(database, filters)
    try:
        _print_events(bus, types, follow, interval)
    except KeyboardInterrupt:
        pass
    finally:
        bus.close()


def _print_events(bus: SqliteEventBus, types: list[str] | None, follow: bool, interval: float) -> None:
    after = 0
    while True:
        batch = bus.events(after=after, limit=500, types=types)
        for sequence, event in batch:
            click.echo(json.dumps(event, separators=(",", ":")))
            after = sequence
        if not follow and len(batch) < 500:
            return
        if not batch:
            time.sleep(interval)


@events.command("replay", short_help="Re-deliver logged events to one subscriber.")
@click.option("--subscriber", required=True, help="The subscriber (in RELAY_SUBSCRIBERS) to re-deliver to.")
@click.option("--since", default=None, metavar="TIME",
              help="Only events published since TIME: RFC 3339 (2026-05-01T12:00:00Z) or a duration back from "
                   "now (30m, 2h, 3d) [default: as far back as the log keeps, RELAY_EVENT_RETENTION].")
@click.option("--type", "types", multiple=True, metavar="TYPE",
              help="Only this event type (an outcome such as completed, storyboard.completed, or the full "
                   "type); repeatable.")
@click.option("--tenant", default=None, help="Only this tenant's events.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The relay's data folder [env RELAY_DATA_DIR, default ./.relay].")
def replay_command(subscriber: str, since: str | None, types: tuple[str, ...], tenant: str | None,
                   data_dir: Path | None) -> None:
    """Re-deliver the logged events a subscriber receives to its queue (or its webhook), in their
    original order and with their original ids, then print how many and the first and last times."""
    configure("warning")  # stdout is the summary; logs (warnings and worse) go to stderr
    settings = Settings.from_env(data_dir=data_dir)
    now = time.time()
    request = ReplayRequest(subscriber, since=_since(since, now), types=types, tenant=tenant)
    if settings.backend == "local" and not (settings.data_dir / "relay.sqlite3").exists():
        raise click.ClickException(f"no relay data at {settings.data_dir} (run `seedance-relay serve` first)")
    event_log, close_log = build_event_log(settings)
    _, _, _, bus, closers = build_ports(settings)
    try:
        summary = replay(event_log, bus, subscriber_filters(settings), request, now=now)
    except InvalidRequest as exc:
        field = exc.violations[0].field if exc.violations else "subscriber"
        raise click.BadParameter(exc.message, param_hint=f"--{field}") from None
    finally:
        for close in (close_log, *closers):
            close()
    click.echo(_summary(summary, dict(settings.webhooks)))


def _since(text: str | None, now: float) -> float | None:
    if text is None:
        return None
    try:
        return parse_since(text, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


def _summary(summary: ReplaySummary, webhooks: dict[str, str]) -> str:
    target = (f"webhook {summary.subscriber!r} (queued for delivery to {webhooks[summary.subscriber]})"
              if summary.subscriber in webhooks else f"subscriber {summary.subscriber!r}")
    if not summary.count or summary.first_at is None or summary.last_at is None:
        return f"replayed 0 events to {target}: the log holds none in that range"
    noun = "event" if summary.count == 1 else "events"
    return (f"replayed {summary.count} {noun} to {target}, published {rfc3339(summary.first_at)} "
            f"to {rfc3339(summary.last_at)} (ids {summary.first_id} … {summary.last_id})")
