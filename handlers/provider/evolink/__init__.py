"""Everything that speaks EvoLink's language: the task model and the HTTP client.

The client (and so httpx) is imported on first use, so importing the task model stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handlers.provider.evolink.task import Task, TaskError, is_task_id, new_task_id

if TYPE_CHECKING:
    from handlers.provider.evolink.client import EvoLinkClient, RetryPolicy

__all__ = ["EvoLinkClient", "RetryPolicy", "Task", "TaskError", "is_task_id", "new_task_id"]


def __getattr__(name: str) -> Any:
    if name in ("EvoLinkClient", "RetryPolicy"):
        from handlers.provider.evolink import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
