"""Retries of failed tasks over real sockets, on both backends: the sandbox fails tasks with a chosen code
(``fail_rate``, ``fail_code``), and the relay creates a new task for a code that says try again, up to
``RELAY_MAX_ATTEMPTS`` (3) tasks, after a short backoff (``RELAY_RETRY_BACKOFF=0.2``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.tenants import REQUEST, TenantStack, tenant_stack

pytestmark = pytest.mark.e2e
RETRY_ENV = {"RELAY_MAX_ATTEMPTS": "3", "RELAY_RETRY_BACKOFF": "0.2", "RELAY_RECONCILE_EVERY": "0.3"}


@pytest.fixture(params=["local", pytest.param("aws", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def moto(backend: str, request: pytest.FixtureRequest) -> str | None:
    return str(request.getfixturevalue("moto_server")) if backend == "aws" else None


@contextmanager
def failing(backend: str, tmp: Path, moto: str | None, rate: float, code: str) -> Iterator[TenantStack]:
    with tenant_stack(backend, tmp, moto=moto, relay_env=RETRY_ENV, fail_rate=rate, fail_code=code, seed=11) as stack:
        yield stack


def run_jobs(stack: TenantStack, count: int) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """``count`` jobs, each to its end; the jobs and the events the ``default`` subscriber received."""
    ids = [stack.submit("acme", {**REQUEST, "metadata": {"n": n}})["id"] for n in range(count)]
    jobs = stack.wait_final("acme", ids, timeout=90)
    return jobs, [e for e in stack.subscriber_messages("default") if e["subject"] in jobs]


def task_ids(job: dict[str, Any]) -> list[str]:
    return [attempt["task_id"] for attempt in job["attempts"]]


def test_half_the_tasks_failing_with_a_retryable_code_ends_every_job_with_one_event(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    """A job is published, or fails after exactly three tasks; every task the sandbox made belongs to one job."""
    with failing(backend, tmp_path, moto, 0.5, "service_error") as stack:
        jobs, events = run_jobs(stack, 16)
        made = {task["id"] for task in stack.sandbox_tasks()}
    attempts = {job_id: task_ids(job) for job_id, job in jobs.items()}
    failed = [job_id for job_id, job in jobs.items() if job["status"] == "failed"]
    assert {job["status"] for job in jobs.values()} <= {"published", "failed"}
    assert all(len(attempts[job_id]) == 3 for job_id in failed)
    assert all(1 <= len(ids) <= 3 for ids in attempts.values()) and max(map(len, attempts.values())) > 1
    assert made == {task for ids in attempts.values() for task in ids} and len(made) == sum(map(len, attempts.values()))
    assert Counter(e["subject"] for e in events) == Counter(list(jobs))
    assert all(task_ids(e["data"]) == attempts[e["subject"]] for e in events)


def test_a_code_the_caller_must_fix_ends_the_job_after_one_task(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    with failing(backend, tmp_path, moto, 1.0, "content_policy_violation") as stack:
        jobs, events = run_jobs(stack, 4)
        made = stack.sandbox_tasks()
    assert {job["status"] for job in jobs.values()} == {"failed"}
    assert [len(task_ids(job)) for job in jobs.values()] == [1] * 4 and len(made) == 4
    assert {e["data"]["error"]["code"] for e in events} == {"content_policy_violation"} and len(events) == 4


def test_every_task_failing_records_three_task_ids_and_one_event(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    with failing(backend, tmp_path, moto, 1.0, "generation_timeout") as stack:
        jobs, events = run_jobs(stack, 3)
    for job_id, job in jobs.items():
        [event] = [e for e in events if e["subject"] == job_id]
        assert job["status"] == "failed" and job["error"]["code"] == "generation_timeout"
        assert len(set(task_ids(job))) == 3 and task_ids(event["data"]) == task_ids(job)
        assert [a.get("code") for a in job["attempts"]] == ["generation_timeout", "generation_timeout", None]
