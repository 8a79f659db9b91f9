"""``seedance-relay events tail``: the events on the local bus, as JSON lines."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from handlers.adapters.local import SqliteEventBus
from handlers.app.settings import Settings
from handlers.app.wiring import subscriber_filters

__all__ = ["events"]


@click.group()
def events() -> None:
    """Look at the events the relay published."""


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
