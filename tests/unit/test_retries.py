"""Which task failures are retried, and how long each retry waits."""

from __future__ import annotations

import pytest

from handlers.base.errors import ProviderRejected
from handlers.domain.jobs import Job, JobStatus, Outcome
from handlers.provider.evolink.task import Task
from handlers.usecases.ingest import decide
from handlers.usecases.retries import MAX_BACKOFF, RETRYABLE_CODES, is_old_task, may_retry, retry_delay

JOB = Job(id="job_1", request={}, fingerprint="f", created_at=0.0, updated_at=0.0, task_id="task-unified-1-cccc",
          status=JobStatus.PROCESSING)


def failed(code: str | None) -> Task:
    error = None if code is None else {"code": code, "message": "m", "type": "task_error"}
    return Task.from_json({"id": "task-unified-1-aaaa", "status": "failed", "error": error})


@pytest.mark.parametrize("code", sorted(RETRYABLE_CODES))
def test_codes_that_say_try_again_are_retryable(code: str) -> None:
    verdict = decide(failed(code))
    assert verdict.outcome is Outcome.FAILED and verdict.retryable and verdict.error and verdict.error["code"] == code


@pytest.mark.parametrize("code", ["content_policy_violation", "invalid_parameters", "image_processing_error",
                                  "image_dimension_mismatch", "quota_exceeded", "resource_not_found", "42"])
def test_codes_the_caller_must_fix_and_quota_errors_are_not(code: str) -> None:
    assert not decide(failed(code)).retryable


def test_a_failure_without_an_error_is_an_unknown_error_and_retryable() -> None:
    verdict = decide(failed(None))
    assert verdict.retryable and verdict.error == {"code": "unknown_error",
                                                   "message": "the provider failed the task without saying why"}


@pytest.mark.parametrize("task", [
    Task.from_json({"id": "task-unified-1-aaaa", "status": "cancelled"}),
    Task.from_json({"id": "task-unified-1-aaaa", "status": "failed", "error": {"code": "request_cancelled"}}),
    Task.from_json({"id": "task-unified-1-aaaa", "status": "completed"}),
    ProviderRejected("not found", status=404, code="task_not_found"),
])
def test_cancelled_completed_without_results_and_unknown_tasks_are_never_retried(task: Task | ProviderRejected) -> None:
    assert not decide(task).retryable


@pytest.mark.parametrize(("retries", "low", "high"), [(1, 15.0, 30.0), (2, 30.0, 60.0), (3, 60.0, 120.0)])
def test_each_retry_waits_between_half_and_all_of_the_doubled_backoff(retries: int, low: float, high: float) -> None:
    assert retry_delay(30.0, retries, 0.0) == low
    assert low < retry_delay(30.0, retries, 0.5) < high
    assert retry_delay(30.0, retries, 0.999999) == pytest.approx(high, rel=1e-5)


def test_the_wait_is_capped_however_many_retries_came_before() -> None:
    assert retry_delay(30.0, 500, 0.999999) == pytest.approx(MAX_BACKOFF, rel=1e-5)


@pytest.mark.parametrize(("failed_before", "max_attempts", "expected"), [(0, 3, True), (1, 3, True), (2, 3, False),
                                                                        (0, 1, False)])
def test_a_job_retries_until_it_has_used_max_attempts_tasks(failed_before: int, max_attempts: int,
                                                            expected: bool) -> None:
    job = Job(id="j", request={}, fingerprint="f", created_at=0, updated_at=0,
              failed_tasks=tuple({"task_id": f"t{n}", "code": "service_error"} for n in range(failed_before)))
    assert may_retry(job, {"code": "service_error"}, max_attempts) is expected
    assert not may_retry(job, {"code": "content_policy_violation"}, max_attempts)


def test_only_the_failed_tasks_of_the_job_are_old() -> None:
    job = JOB.retried(1.0, {"code": "service_error", "message": "m"}, 31.0)
    assert is_old_task(job, "task-unified-1-cccc") and not is_old_task(job, "task-unified-2-dddd")
    assert not is_old_task(job, None)
