"""The event log on DynamoDB: the event ledger's items, indexed by UTC day in publish order.

Logging costs the publisher no extra call. The ledger's record step (the ``UpdateItem`` that
marks an event id ``published``, :class:`~handlers.adapters.aws.bus.DynamoEventLedger`) also
writes :func:`log_attributes` onto the ``event#<id>`` item:

    log_day      the UTC day of publishing, ``YYYY-MM-DD``: the partition key of ``event-log-index``
    log_key      the publish time, fixed width, then ``#`` and the event id: the sort key, so a day
                 reads in publish order, ties broken by id
    event        the CloudEvent as published (JSON)
    log_type     its ``type``; ``log_tenant`` its ``tenant``, if any: what :meth:`DynamoEventLog.page`
                 filters on (never ``tenant`` or ``status``, which other indexes key on)
    expires_at   publishing time + the retention: the table's TTL removes the item after it

The index is sparse: a claim still ``publishing`` has none of the key attributes, so it is never
read as logged, and no job item has them. :meth:`DynamoEventLog.page` is one ``Query`` per day of
the range (and per 1 MB page), never a ``Scan``; items past ``expires_at`` that TTL has not yet
removed are filtered out. The index is eventually consistent: an event published a moment ago
may be missing from a read.

One partition per day takes all of that day's events: a partition takes about 1,000 writes a
second, far above the rate at which a video relay finishes jobs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from handlers.adapters.aws.errors import aws_errors
from handlers.adapters.aws.jobs import EVENT_LOG_INDEX
from handlers.base.errors import InvalidRequest, QueueError, Violation
from handlers.ports import LoggedEvent

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = ["EVENT_LOG_INDEX", "LEDGER_PREFIX", "DynamoEventLog", "log_attributes", "log_day", "log_key"]

LEDGER_PREFIX = "event#"
DAY = 86_400.0
_UNBOUNDED = "~"  # sorts after every log_key
_INVALID_CURSOR = Violation("cursor", "invalid_cursor", "not a cursor this event log gave out")


def log_day(published_at: float) -> str:
    """The UTC day of ``published_at``: the partition of the event log."""
    return time.strftime("%Y-%m-%d", time.gmtime(published_at))


def _position(published_at: float) -> str:
    return f"{max(published_at, 0.0):020.6f}"


def log_key(published_at: float, event_id: str) -> str:
    """The publish time as fixed-width text, then the id: sorts like ``(published_at, event_id)``."""
    return f"{_position(published_at)}#{event_id}"


def log_attributes(event: Mapping[str, Any], event_id: str, *, published_at: float,
                   retention_days: float) -> dict[str, AttributeValueTypeDef]:
    """What the record step writes onto the ledger item so that the event is in the log."""
    attributes: dict[str, AttributeValueTypeDef] = {
        "log_day": {"S": log_day(published_at)}, "log_key": {"S": log_key(published_at, event_id)},
        "event": {"S": json.dumps(event, separators=(",", ":"), ensure_ascii=False)},
        "log_type": {"S": str(event["type"])},
        "expires_at": {"N": str(math.ceil(published_at + retention_days * DAY))}}
    tenant = event.get("tenant")
    if isinstance(tenant, str) and tenant:
        attributes["log_tenant"] = {"S": tenant}
    return attributes


def _cursor_position(cursor: str) -> tuple[float, str]:
    """``(published_at, event id)`` of a cursor (a ``log_key``)."""
    stamp, separator, event_id = cursor.partition("#")
    try:
        published_at = float(stamp)
    except ValueError:
        raise InvalidRequest([_INVALID_CURSOR]) from None
    if not separator or not event_id or len(stamp) != 20 or not math.isfinite(published_at):
        raise InvalidRequest([_INVALID_CURSOR])
    return published_at, event_id


def _days(first: float, last: float) -> Iterator[str]:
    """Every UTC day from the one holding ``first`` to the one holding ``last``."""
    day = math.floor(first / DAY) * DAY
    while day <= last:
        yield log_day(day)
        day += DAY


class DynamoEventLog:
    """:class:`~handlers.ports.EventLog` over ``event-log-index`` of the table ``table``.

    ``retention_days`` bounds what is read (the ledger writes the TTL with the same setting).
    """

    def __init__(self, client: DynamoDBClient, table: str, *, retention_days: float = 30,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self.table = table
        self.retention_days = retention_days
        self._clock = clock

    def page(self, *, since: float | None = None, until: float | None = None, types: Collection[str] | None = None,
             tenants: Collection[str] | None = None, cursor: str | None = None,
             limit: int = 100) -> tuple[list[LoggedEvent], str | None]:
        now = self._clock()
        start = max(now - self.retention_days * DAY, since if since is not None else 0.0, 0.0)
        end = now if until is None else until
        high = _UNBOUNDED if until is None else _position(until)
        after = _cursor_position(cursor) if cursor is not None else None
        if (types is not None and not types) or (tenants is not None and not tenants) or limit < 1:
            return [], None
        found: list[LoggedEvent] = []
        first = max(start, after[0]) if after is not None else start
        filters = self._filters(now, types, tenants)
        for day in _days(first, end):
            resume = cursor if after is not None and log_day(after[0]) == day else None
            self._read_day(day, (_position(start), high), filters, resume, found, limit)
            if len(found) >= limit:
                return found, found[-1].cursor
        return found, None

    def _filters(self, now: float, types: Collection[str] | None,
                 tenants: Collection[str] | None) -> tuple[str, dict[str, AttributeValueTypeDef]]:
        clauses = ["expires_at > :now"]
        values: dict[str, AttributeValueTypeDef] = {":now": {"N": str(math.floor(now))}}
        for attribute, wanted in (("log_type", types), ("log_tenant", tenants)):
            if wanted is None:
                continue
            names = [f":{attribute}{n}" for n in range(len(wanted))]
            values.update({name: {"S": value} for name, value in zip(names, sorted(wanted), strict=True)})
            clauses.append(f"{attribute} IN ({', '.join(names)})")
        return " AND ".join(clauses), values

    def _read_day(self, day: str, bounds: tuple[str, str], filters: tuple[str, dict[str, AttributeValueTypeDef]],
                  resume: str | None, found: list[LoggedEvent], limit: int) -> None:
        """Append the day's events in ``bounds`` (after ``resume``) to ``found`` until it holds ``limit``."""
        expression, values = filters
        query: dict[str, Any] = {
            "TableName": self.table, "IndexName": EVENT_LOG_INDEX,
            "KeyConditionExpression": "log_day = :day AND log_key BETWEEN :low AND :high",
            "FilterExpression": expression,
            "ExpressionAttributeValues": {**values, ":day": {"S": day}, ":low": {"S": bounds[0]},
                                          ":high": {"S": bounds[1]}}}
        if resume is not None:
            query["ExclusiveStartKey"] = {"id": {"S": LEDGER_PREFIX + _cursor_position(resume)[1]},
                                          "log_day": {"S": day}, "log_key": {"S": resume}}
        while len(found) < limit:
            with aws_errors(QueueError, f"read the event log of {day}"):
                answer = self._client.query(**query, Limit=limit - len(found))
            found += [_logged(item) for item in answer.get("Items", [])]
            if "LastEvaluatedKey" not in answer:
                return
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def _logged(item: Mapping[str, Any]) -> LoggedEvent:
    key = str(item["log_key"]["S"])
    return LoggedEvent(event=json.loads(item["event"]["S"]), published_at=_cursor_position(key)[0], cursor=key)
