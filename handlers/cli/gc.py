"""``seedance-relay gc [--dry-run]``: one clean-up pass by hand, on the configured backend.

It opens the relay's storage directly (as ``dlq`` and ``keys`` do), runs
:func:`~handlers.usecases.retention.collect_garbage` and prints what went, by kind, as a table (or
JSON). The relay runs the same pass by itself every ``RELAY_GC_EVERY`` seconds; by hand it is for
seeing what a retention setting would remove (``--dry-run``) or applying a shorter one at once. On
AWS it lists the bucket, which the scheduled pass leaves to the bucket's lifecycle rules.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import click

from handlers.app.settings import Settings
from handlers.base.logs import configure
from handlers.ports import BlobStore, EventBus, JobStore, WorkQueue
from handlers.usecases.retention import PASS_LIMIT, Collected, GarbageReport, collect_garbage

__all__ = ["gc", "render_report"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


@dataclass
class _Storage:
    """The relay's settings and storage, without a provider: what a pass needs."""

    settings: Settings
    jobs: JobStore
    blobs: BlobStore
    ingest_queue: WorkQueue
    bus: EventBus
    closers: list[Callable[[], None]] = field(default_factory=list)


@contextmanager
def _storage(settings: Settings) -> Iterator[tuple[_Storage, object]]:
    """The storage ``RELAY_BACKEND`` names and the event log; a local one only if its database exists."""
    from handlers.app.wiring import build_event_log, build_ports

    database = settings.data_dir / "relay.sqlite3"
    if settings.backend == "local" and not database.exists():
        raise click.ClickException(f"no relay data at {settings.data_dir} (RELAY_DATA_DIR); nothing to clean up")
    jobs, blobs, queue, bus, closers = build_ports(settings)
    event_log, close_log = build_event_log(settings)
    storage = _Storage(settings, jobs, blobs, queue, bus, [*closers, close_log])
    try:
        yield storage, event_log
    finally:
        for close in storage.closers:
            close()


@click.command(short_help="Remove what the retention settings let go, and print it.")
@click.option("--dry-run", is_flag=True, help="Find and count what would go; remove nothing.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=PASS_LIMIT, show_default=True,
              help="Items of each kind taken in this pass (the rest waits for the next).")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON instead of a table.")
def gc(dry_run: bool, limit: int, as_json: bool) -> None:
    """Run one clean-up pass on the backend RELAY_BACKEND names: finished jobs past RELAY_JOB_RETENTION
    days, files under jobs/ past RELAY_VIDEO_RETENTION days (unset: kept), uploads past their URL's
    lifetime and RELAY_UPLOAD_GRACE, unacknowledged local queue messages past RELAY_QUEUE_RETENTION days
    and local events past RELAY_EVENT_RETENTION days; then the local database gives the space back."""
    configure("warning")  # stdout is the report; logs (warnings and worse) go to stderr
    settings = Settings.from_env()
    with _storage(settings) as (storage, event_log):
        report = collect_garbage(storage, now=time.time(), dry_run=dry_run, limit=limit, event_log=event_log)
    click.echo(json.dumps(report.as_dict()) if as_json else render_report(report))


def render_report(report: GarbageReport) -> str:
    """The report as a table: one line per kind, then the space given back."""
    verb = "WOULD REMOVE" if report.dry_run else "REMOVED"
    rows = [("KIND", verb, "BYTES", "OLDER THAN (UTC)")]
    rows += [(part.kind.value, str(part.count) if part.skipped is None else "-", _bytes(part), _cutoff(part))
             for part in report.collected]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = [f"{kind:<{widths[0]}}  {count:>{widths[1]}}  {size:>{widths[2]}}  {when}"
             for kind, count, size, when in rows]
    if report.dry_run:
        lines.append("dry run: nothing was removed")
    else:
        lines.append(f"database space given back: {_human(report.reclaimed)}")
    return "\n".join(lines)


def _bytes(part: Collected) -> str:
    return "-" if part.skipped is not None or part.bytes is None else _human(part.bytes)


def _cutoff(part: Collected) -> str:
    if part.skipped is not None:
        return part.skipped
    assert part.before is not None
    return datetime.fromtimestamp(part.before, UTC).strftime("%Y-%m-%d %H:%M")


def _human(size: int) -> str:
    value = float(size)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
