"""The reconciler on a schedule (EventBridge), and the clean-up pass once every ``RELAY_GC_EVERY``.

On AWS the bucket's lifecycle rules expire uploads and videos, SQS expires messages, and the table's
TTL removes finished jobs, events and session records, all for free. The scheduled pass only deletes
the finished jobs the TTL has left for :data:`TTL_LAG` past their retention (written before the
retention was shortened, or missed): a ``Query`` that reads next to nothing when the TTL keeps up.
"""

from __future__ import annotations

from typing import Any

from handlers.lambdas._relay import flush_metrics, relay
from handlers.usecases import reconcile
from handlers.usecases.retention import Kind, collect_garbage, gc_due

__all__ = ["TTL_LAG", "handler"]

TTL_LAG = 2 * 86_400.0  # DynamoDB's TTL deletes expired items within about two days


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    try:
        counts = reconcile(relay())
        settings, now = relay().settings, relay().clock()
        if gc_due(now, every=settings.gc_every, period=settings.reconcile_every):
            collected = collect_garbage(relay(), now=now, kinds=(Kind.JOBS,), lag=TTL_LAG).count
            counts.update({"gc_removed": collected} if collected else {})
        return counts
    finally:
        flush_metrics()
