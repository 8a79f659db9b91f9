"""Replay: re-deliver logged events to one subscriber, in publish order, each with its original ``id``.

The events are read from the :class:`~handlers.ports.EventLog` and sent, unchanged, into the
subscriber's own queue (:meth:`~handlers.ports.EventBus.subscriber`): the queue its consumer
reads, or, for a webhook subscriber, the queue its deliverer drains, so a replayed event is
signed and retried exactly as a live one. Only the events the subscriber's filter lets through
are sent (its types and ``tenant:`` items, :func:`handlers.domain.events.wants`), narrowed
further by the request's types and tenant. The range ends where the replay began (``until``
defaults to now), so events published meanwhile are left to the live fan-out. A consumer that
already has an event sees it again with the same id: deduplicating by id makes replay safe.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from handlers.base.errors import InvalidRequest, Violation
from handlers.base.logs import get_logger
from handlers.domain.events import EVENT_TYPES, TYPE_PREFIX, full_type, short_type, split_filter
from handlers.domain.jobs import rfc3339
from handlers.ports import EventBus, EventLog

__all__ = ["DEFAULT_BATCH", "ReplayRequest", "ReplaySummary", "parse_since", "replay", "replay_filter"]

log = get_logger(__name__)

DEFAULT_BATCH = 100
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}


def parse_since(text: str, now: float) -> float:
    """``--since`` as epoch seconds: an RFC 3339 time (``2026-05-01T12:00:00Z``, offset required) or a
    duration back from ``now`` (``90s``, ``30m``, ``2h``, ``3d``, ``1w``). ``ValueError`` says what it takes."""
    value = text.strip()
    if match := _DURATION.fullmatch(value):
        return now - float(match[1]) * _UNITS[match[2]]
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or "T" not in value.upper():
        raise ValueError(f"{text!r} is neither an RFC 3339 time with an offset (2026-05-01T12:00:00Z) "
                         "nor a duration (30m, 2h, 3d, 1w)")
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """Which events to re-deliver to ``subscriber``: published in [``since``, ``until``), of ``types``
    (as :func:`~handlers.domain.events.full_type` reads them; none: every type the subscriber takes) and
    of ``tenant`` (none: every tenant it takes)."""

    subscriber: str
    since: float | None = None
    until: float | None = None
    types: tuple[str, ...] = ()
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """What a replay sent: how many events, and the publish times and ids of the first and last."""

    subscriber: str
    count: int = 0
    first_at: float | None = None
    last_at: float | None = None
    first_id: str | None = None
    last_id: str | None = None


def _refused(field: str, code: str, message: str) -> InvalidRequest:
    return InvalidRequest([Violation(field, code, message)], message=message)


def _types(requested: Sequence[str]) -> frozenset[str]:
    chosen = {name: full_type(name) for name in requested}
    unknown = [name for name, chosen_type in chosen.items() if chosen_type not in EVENT_TYPES]
    if unknown:
        accepted = ", ".join(short_type(t) for t in EVENT_TYPES)
        raise _refused("type", "unknown_type", f"unknown event type {unknown[0]!r}; accepted: {accepted} "
                       f"(or the full type, such as {TYPE_PREFIX}completed)")
    return frozenset(chosen.values())


def replay_filter(items: Sequence[str], request: ReplayRequest) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    """``(types, tenants)`` to read from the log for a subscriber with filter ``items`` (``None``: all).

    A requested type or tenant the subscriber does not receive is refused, naming the field
    (``type`` or ``tenant``): replay never sends a subscriber what its filter keeps from it."""
    wanted_types, wanted_tenants = split_filter(items)
    types = _types(request.types) if request.types else None
    if types is not None and "*" not in wanted_types and not types <= wanted_types:
        outside = short_type(sorted(types - wanted_types)[0])
        raise _refused("type", "not_subscribed", f"subscriber {request.subscriber!r} does not receive "
                       f"{outside!r} events (its filter: {_shown(items)})")
    if types is None and "*" not in wanted_types:
        types = frozenset(wanted_types)
    if request.tenant is not None and wanted_tenants and request.tenant not in wanted_tenants:
        raise _refused("tenant", "not_subscribed", f"subscriber {request.subscriber!r} does not receive the "
                       f"events of tenant {request.tenant!r} (its filter: {_shown(items)})")
    tenants = frozenset({request.tenant}) if request.tenant is not None else (wanted_tenants or None)
    return types, tenants


def _shown(items: Collection[str]) -> str:
    return " ".join(short_type(i) for i in items)


def replay(event_log: EventLog, bus: EventBus, filters: Mapping[str, Sequence[str]], request: ReplayRequest, *,
           now: float, batch: int = DEFAULT_BATCH) -> ReplaySummary:
    """Send the logged events ``request`` selects to its subscriber's queue, oldest first, ``batch`` at a time.

    ``filters`` maps each configured subscriber to its filter; an unknown subscriber is refused
    (field ``subscriber``), and so is a range that ends before it starts (``since``)."""
    if request.subscriber not in filters:
        raise _refused("subscriber", "unknown_subscriber", f"no subscriber {request.subscriber!r}; configured: "
                       f"{', '.join(filters) or 'none'} (RELAY_SUBSCRIBERS)")
    until = now if request.until is None else request.until
    if request.since is not None and request.since >= until:
        raise _refused("since", "empty_range", f"{rfc3339(request.since)} is not before the end of the range "
                       f"({rfc3339(until)}): there is nothing to replay")
    types, tenants = replay_filter(filters[request.subscriber], request)
    queue = bus.subscriber(request.subscriber)
    summary = ReplaySummary(request.subscriber)
    cursor: str | None = None
    while True:
        page, cursor = event_log.page(since=request.since, until=until, types=types, tenants=tenants, cursor=cursor,
                                 limit=batch)
        if page:
            queue.send_batch([logged.event for logged in page])
            summary = ReplaySummary(
                request.subscriber, summary.count + len(page),
                summary.first_at if summary.first_at is not None else page[0].published_at, page[-1].published_at,
                summary.first_id or str(page[0].event["id"]), str(page[-1].event["id"]))
            log.info("replay.sent", subscriber=request.subscriber, events=len(page), total=summary.count)
        if cursor is None:
            return summary
