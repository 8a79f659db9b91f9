"""The reconciler on a schedule (EventBridge)."""

from __future__ import annotations

from typing import Any

from handlers.lambdas._relay import flush_metrics, relay
from handlers.usecases import reconcile

__all__ = ["handler"]


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    try:
        return reconcile(relay())
    finally:
        flush_metrics()
