"""Cancelling jobs over real sockets, on both backends: ``DELETE /v1/jobs/{id}`` and ``jobs cancel`` against the
relay in front of the sandbox, ``cancel_after`` deadlines, and cancel racing completion.

The shared relay's sandbox runs a task in about four seconds (speed 20), long enough to cancel a job while its
task runs and short enough to see the abandoned task complete and call back. Each test has a tenant of its own;
each tenant holds one task at EvoLink at a time (``RELAY_TENANT_MAX_IN_FLIGHT=1``), so a second job queues.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from handlers.cli import main
from handlers.domain.jobs import Job, JobStatus, derive_job_id, request_fingerprint
from handlers.usecases.ingest import late_callback_key
from tests.support.cancels import race_cancel_and_completion, tally_race
from tests.support.servers import wait_until
from tests.support.tenants import REQUEST, TenantStack, tenant_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["local", pytest.param("aws", marks=pytest.mark.integration)])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenantStack]:
    backend = str(request.param)
    moto = str(request.getfixturevalue("moto_server")) if backend == "aws" else None
    with tenant_stack(backend, tmp_path_factory.mktemp(f"cancel-{backend}"), moto=moto, speed=20.0,
                      relay_env={"RELAY_TENANT_MAX_IN_FLIGHT": "1"}) as running:
        yield running


def events_of(stack: TenantStack, job_id: str) -> list[dict[str, Any]]:
    return [m for m in stack.subscriber_messages("default") if m.get("subject") == job_id]


def wait_events(stack: TenantStack, job_id: str, count: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def enough() -> list[dict[str, Any]] | None:
        seen.extend(events_of(stack, job_id))
        return seen if len(seen) >= count else None

    result: list[dict[str, Any]] = wait_until(enough, 30, f"{count} event(s) of {job_id}", interval=0.1)
    return result


def sandbox_task(stack: TenantStack, task_id: str) -> dict[str, Any]:
    return next(t for t in stack.sandbox_tasks() if t["id"] == task_id)


def test_a_running_job_is_cancelled_its_task_abandoned_and_its_late_callback_only_recorded(
        stack: TenantStack) -> None:
    tenant = stack.new_tenant("running")
    job = stack.submit(tenant, {**REQUEST, "metadata": {"case": "running"}})
    answer = stack.api(tenant).delete(f"/v1/jobs/{job['id']}")
    cancelled = answer.json()
    assert answer.status_code == 200 and cancelled["status"] == "cancelled"
    assert cancelled["error"]["reason"] == "caller" and cancelled["error"]["abandoned_task_id"] == job["task_id"]
    wait_until(lambda: sandbox_task(stack, job["task_id"])["status"] == "completed", 30, "the abandoned task")
    wait_until(lambda: stack.relay.blobs.head(late_callback_key(job["id"])), 30, "the late callback's record")
    note = json.loads(b"".join(stack.relay.blobs.read(late_callback_key(job["id"]))))
    after = stack.job(tenant, job["id"])
    [event] = wait_events(stack, job["id"], 1)
    assert note["task_id"] == job["task_id"] and note["status"] == "cancelled"
    assert (after["status"], after["outputs"], after["updated_at"]) == ("cancelled", [], cancelled["updated_at"])
    assert event["type"] == "io.seedance-relay.job.cancelled" and event["data"]["task_id"] == job["task_id"]
    assert stack.relay.blobs.head(f"jobs/{job['id']}/output-0.mp4") is None and events_of(stack, job["id"]) == []


def test_a_queued_job_is_cancelled_at_once_and_never_reaches_the_sandbox(stack: TenantStack) -> None:
    tenant = stack.new_tenant("queued")
    first = stack.submit(tenant, {**REQUEST, "metadata": {"case": "first"}})
    second = stack.submit(tenant, {**REQUEST, "metadata": {"case": "second"}})
    assert second["status"] == "queued"
    answer = stack.api(tenant).delete(f"/v1/jobs/{second['id']}")
    stack.api(tenant).delete(f"/v1/jobs/{first['id']}")
    [event] = wait_events(stack, second["id"], 1)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled" and answer.json()["task_id"] is None
    assert event["type"] == "io.seedance-relay.job.cancelled" and event["data"]["task_id"] is None
    assert [t["id"] for t in stack.sandbox_tasks() if t["id"] == first["task_id"]] == [first["task_id"]]
    assert stack.job(tenant, second["id"])["status"] == "cancelled"


@pytest.mark.parametrize("status", [JobStatus.ACCEPTED, JobStatus.WAITING])
def test_an_accepted_or_waiting_job_is_cancelled_at_once(stack: TenantStack, status: JobStatus) -> None:
    """The job is put in the store as its producer leaves it (a deferred create; a job waiting on another)."""
    tenant = stack.new_tenant(status.value)
    body = {**REQUEST, "metadata": {"case": status.value}}
    now = stack.relay.clock()
    fingerprint = request_fingerprint(body, {})
    job = stack.relay.jobs.create(Job(
        id=derive_job_id(f"{tenant}/test", status.value, fingerprint), request=body, fingerprint=fingerprint,
        created_at=now, updated_at=now, status=status, tenant=tenant, model=str(REQUEST["model"]),
        depends_on=(f"job_{'1' * 26}",) if status is JobStatus.WAITING else ()))
    answer = stack.api(tenant).delete(f"/v1/jobs/{job.id}")
    [event] = wait_events(stack, job.id, 1)
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    assert event["type"] == "io.seedance-relay.job.cancelled"


def test_cancelling_an_ended_job_is_409_naming_its_status(stack: TenantStack) -> None:
    tenant = stack.new_tenant("ended")
    job = stack.submit(tenant, {**REQUEST, "metadata": {"case": "ended"}})
    stack.wait_final(tenant, [job["id"]], timeout=60)
    published = stack.api(tenant).delete(f"/v1/jobs/{job['id']}")
    other = stack.submit(tenant, {**REQUEST, "metadata": {"case": "twice"}})
    stack.api(tenant).delete(f"/v1/jobs/{other['id']}")
    again = stack.api(tenant).delete(f"/v1/jobs/{other['id']}")
    assert published.status_code == again.status_code == 409
    assert published.json()["error"]["code"] == "job_ended" and published.json()["error"]["status"] == "published"
    assert again.json()["error"]["status"] == "cancelled"
    assert stack.job(tenant, job["id"])["status"] == "published"


def test_another_tenants_job_is_404_and_a_reader_key_is_403(stack: TenantStack) -> None:
    owner, stranger = stack.new_tenant("owner"), stack.new_tenant("stranger")
    job = stack.submit(owner, {**REQUEST, "metadata": {"case": "isolation"}})
    reader = stack.client(stack.new_key(owner, role="reader"))
    foreign = stack.api(stranger).delete(f"/v1/jobs/{job['id']}")
    missing = stack.api(stranger).delete(f"/v1/jobs/job_{'0' * 26}")
    refused = reader.delete(f"/v1/jobs/{job['id']}")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == json.loads(missing.text.replace(f"job_{'0' * 26}", job["id"]))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert stack.job(owner, job["id"])["status"] in ("submitted", "processing", "stored", "published")
    admin = stack.api("admin").delete(f"/v1/jobs/{job['id']}")
    assert admin.status_code in (200, 409)  # an admin key may cancel any tenant's job (unless it ended first)


def test_cancel_after_cancels_a_running_job_at_its_deadline(stack: TenantStack) -> None:
    tenant = stack.new_tenant("deadline")
    job = stack.submit(tenant, {**REQUEST, "metadata": {"case": "deadline"}, "cancel_after": 1})
    [final] = stack.wait_final(tenant, [job["id"]], timeout=30).values()
    [event] = wait_events(stack, job["id"], 1)
    assert job["deadline_at"] is not None and final["status"] == "cancelled"
    assert final["error"]["reason"] == "deadline" and event["data"]["error"]["reason"] == "deadline"


def test_a_bad_cancel_after_is_400_naming_the_field(stack: TenantStack) -> None:
    tenant = stack.new_tenant("bad")
    answer = stack.api(tenant).post("/v1/jobs", json={**REQUEST, "cancel_after": 0})
    [error] = answer.json()["error"]["errors"]
    assert answer.status_code == 400 and error["field"] == "cancel_after" and "from 1 to 604800" in error["message"]


def test_the_cli_cancels_a_job_and_refuses_one_that_ended(stack: TenantStack) -> None:
    tenant = stack.new_tenant("cli")
    job = stack.submit(tenant, {**REQUEST, "metadata": {"case": "cli"}})
    args = ["jobs", "cancel", job["id"], "--relay-url", stack.url, "--api-key", stack.key_of(tenant)]
    first, second = CliRunner().invoke(main, args), CliRunner().invoke(main, args)
    assert first.exit_code == 0 and json.loads(first.output)["status"] == "cancelled"
    assert second.exit_code == 1 and "409 job_ended" in second.output and "cancelled" in second.output


@pytest.fixture(params=["local", pytest.param("aws", marks=pytest.mark.integration)])
def quiet_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TenantStack]:
    """A relay that ingests nothing by itself: the sandbox sends no callback, and the reconciler's first pass
    is an hour away."""
    moto = str(request.getfixturevalue("moto_server")) if request.param == "aws" else None
    with tenant_stack(str(request.param), tmp_path, moto=moto, callback_drop=1.0,
                      relay_env={"RELAY_RECONCILE_EVERY": "3600", "RELAY_RECONCILE_GRACE": "3600"}) as running:
        yield running


def test_cancel_racing_completion_ends_each_job_once_with_one_event(quiet_stack: TenantStack) -> None:
    """Twelve jobs whose tasks completed; for each, one process ingests it while another cancels it."""
    stack = quiet_stack
    jobs = [stack.submit("acme", {**REQUEST, "metadata": {"race": n}}) for n in range(12)]
    tasks = {job["task_id"] for job in jobs}
    wait_until(lambda: {t["id"] for t in stack.sandbox_tasks() if t["status"] == "completed"} >= tasks, 60,
               "every task to complete")
    sides = race_cancel_and_completion(stack.env, [job["id"] for job in jobs])
    final = {job["id"]: stack.relay.jobs.get(job["id"]) for job in jobs}
    copied = {job_id for job_id in final if stack.relay.blobs.head(f"jobs/{job_id}/output-0.mp4") is not None}
    figures = tally_race(final, stack.subscriber_messages("default"), sides, copied)
    assert set(figures["statuses"]) <= {"published", "cancelled"} and sum(figures["statuses"].values()) == 12
    assert figures["events_per_job"] == {1: 12} and figures["mismatched_events"] == 0
    assert figures["cancel_won"] + figures["completion_won"] == 12 and figures["cancelled_with_outputs"] == 0
    assert figures["orphan_copies"] == 0  # a copy the cancel beat to the record is removed
