"""Retrying a task that EvoLink failed with a code that says "try again later".

EvoLink bills no failed task, and some of its failure codes are passing trouble on its side
(:data:`RETRYABLE_CODES`). A job whose task fails with one of them gets a new task of the same
request, up to ``RELAY_MAX_ATTEMPTS`` tasks in all, each after a longer wait: ``RELAY_RETRY_BACKOFF``
doubled per earlier retry, with jitter (:func:`retry_delay`). Codes the caller must fix
(``content_policy_violation``, ``invalid_parameters``, ``image_processing_error``,
``image_dimension_mismatch``), quota and key errors, and a task EvoLink no longer knows are never retried.

Only the ingest path retries, and only once it has read the task back from EvoLink as ``failed`` (the
callback body is never trusted), so the old task is known failed, hence unbilled, before a new one
is created. :meth:`~handlers.domain.jobs.Job.retried` records the old task (id, code, message, time)
on the job and brings it back to ``accepted`` with ``check_at`` at the end of the wait; the
reconciler's pass then submits it the ordinary way. A callback or reconciler pass for an old task never
adopts it and never publishes (:func:`is_old_task`).

What the job holds stays in place across its attempts: its budget hold (settled once, when the job
ends) and its slot at EvoLink (renewed with the new task). So a retry never queues behind newer jobs,
and the tenant's cap counts the job through its wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.app.relay import Relay
from handlers.base.logs import get_logger
from handlers.domain.jobs import Job

__all__ = ["MAX_BACKOFF", "RETRYABLE_CODES", "is_old_task", "may_retry", "retry", "retry_delay"]

log = get_logger(__name__)
RETRYABLE_CODES = frozenset({"service_error", "generation_timeout", "generation_failed_no_content",
                             "resource_exhausted", "service_unavailable", "unknown_error"})
"""EvoLink's task error codes that say the same request may well succeed later."""
MAX_BACKOFF = 3600.0
"""The longest wait before a new task, in seconds, however many tasks came before."""


def retry_delay(base: float, retries: int, draw: float) -> float:
    """Seconds to wait before retry number ``retries`` (1: the job's second task): ``base * 2 ** (retries - 1)``,
    capped at :data:`MAX_BACKOFF`, times a jitter between one half and one (``draw`` in ``[0, 1)``)."""
    ceiling = min(MAX_BACKOFF, base * 2.0 ** min(max(retries - 1, 0), 32))
    return ceiling * (0.5 + min(max(draw, 0.0), 1.0) / 2)


def may_retry(job: Job, error: Mapping[str, Any] | None, max_attempts: int) -> bool:
    """Whether the job's current task, failed with ``error``, is followed by a new task: its code says try again,
    and the job has used fewer than ``max_attempts`` tasks."""
    code = str((error or {}).get("code") or "")
    return code in RETRYABLE_CODES and len(job.failed_tasks) + 1 < max_attempts


def retry(relay: Relay, job: Job, error: Mapping[str, Any]) -> Job:
    """Record the failed task and bring the job back to ``accepted``, its new task due after the backoff."""
    now = relay.clock()
    retries = len(job.failed_tasks) + 1
    delay = retry_delay(relay.settings.retry_backoff, retries, relay.throttle.draw())
    failure = {key: error[key] for key in ("code", "message", "type") if key in error}
    retried = relay.jobs.update(job.retried(now, failure, now + delay))
    relay.metrics.task_retried(str(failure.get("code")))
    log.warning("job.retrying", job_id=job.id, task_id=job.task_id, code=failure.get("code"), attempt=retries + 1,
                max_attempts=relay.settings.max_attempts, delay=round(delay, 3))
    return retried


def is_old_task(job: Job, task_id: str | None) -> bool:
    """Whether ``task_id`` is a task of the job that failed and was followed by a new one."""
    return task_id is not None and any(record.get("task_id") == task_id for record in job.failed_tasks)
