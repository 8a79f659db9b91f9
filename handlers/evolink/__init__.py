"""Everything that speaks EvoLink's language: the task model and the HTTP client."""

from handlers.evolink.client import EvoLinkClient, RetryPolicy
from handlers.evolink.task import Task, TaskError, is_task_id, new_task_id

__all__ = ["EvoLinkClient", "RetryPolicy", "Task", "TaskError", "is_task_id", "new_task_id"]
