"""Concurrency limits over real sockets, on both backends: the relay's caps on tasks at EvoLink (RELAY_MAX_IN_FLIGHT,
RELAY_TENANT_MAX_IN_FLIGHT), its fair queue, and the sandbox's own plan limit (SANDBOX_MAX_CONCURRENCY, 429s).

What ran at once is read from the sandbox's task files afterwards: each task's creation and the moment it ended,
so "never more than N at the sandbox" is measured, not inferred from the relay's own books.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.tenants import REQUEST, TenantStack, max_overlap, tenant_stack

pytestmark = pytest.mark.e2e
SLOW = 120.0  # sandbox speed: a 4 s 480p task runs 86 s / 120 = 0.72 s


def capped(cap: int, tenant_cap: int | None = None) -> dict[str, str]:
    return {"RELAY_MAX_IN_FLIGHT": str(cap), **({"RELAY_TENANT_MAX_IN_FLIGHT": str(tenant_cap)} if tenant_cap else {})}


@pytest.fixture(params=["local", pytest.param("aws", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def moto(backend: str, request: pytest.FixtureRequest) -> str | None:
    return str(request.getfixturevalue("moto_server")) if backend == "aws" else None


def body(n: int) -> dict[str, Any]:
    return {**REQUEST, "metadata": {"n": n}}


def at_once(stack: TenantStack, task_ids: set[str] | None = None) -> int:
    """The most tasks (of ``task_ids``, else all) that were running at the sandbox at one instant."""
    return max_overlap([(t["created"], t["finished"]) for t in stack.sandbox_tasks()
                        if task_ids is None or t["id"] in task_ids])


def test_with_two_slots_the_third_job_waits_queued_and_the_sandbox_never_runs_more_than_two(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    with tenant_stack(backend, tmp_path, moto=moto, relay_env=capped(2), speed=SLOW) as stack:
        jobs = [stack.submit("acme", body(n)) for n in range(3)]
        third = stack.job("acme", jobs[2]["id"])
        finals = stack.wait_final("acme", [j["id"] for j in jobs])
        most = at_once(stack)
        leases = stack.relay.slots.leases(time.time())
    assert [j["status"] for j in jobs] == ["submitted", "submitted", "queued"]
    assert (third["status"], third["queue_position"], third["task_id"]) == ("queued", 1, None)
    assert {j["status"] for j in finals.values()} == {"published"}
    assert most == 2
    assert leases == []


def test_the_202_of_a_queued_job_gives_its_place_in_the_queue(tmp_path: Path) -> None:
    with tenant_stack("local", tmp_path, relay_env=capped(1), speed=SLOW) as stack:
        stack.submit("acme", body(0))
        queued = stack.submit("acme", body(1))
    assert (queued["status"], queued.get("queue_position")) == ("queued", 1)


def test_a_tenant_behind_another_tenants_burst_is_next_in_the_queue(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    """Two slots; acme fills them and queues three more; bravo's one job, queued after, is shown first in the
    queue and is the next to start. acme's second job runs three times longer than its first, so the slots free
    one at a time and "next" is the order of admissions, not a race between two creates."""
    with tenant_stack(backend, tmp_path, moto=moto, relay_env=capped(2), speed=SLOW) as stack:
        acme = [stack.submit("acme", {**body(n), "duration": 12} if n == 1 else body(n))["id"] for n in range(5)]
        bravo = stack.submit("bravo", body(9))["id"]
        places = {job_id: stack.job("admin", job_id).get("queue_position") for job_id in [*acme[2:], bravo]}
        finals = stack.wait_final("admin", [*acme, bravo])
        created = [t["id"] for t in stack.sandbox_tasks()]
        most = at_once(stack)
    assert places == {bravo: 1, acme[2]: 2, acme[3]: 3, acme[4]: 4}
    assert created.index(finals[bravo]["task_id"]) == 2
    assert {j["status"] for j in finals.values()} == {"published"} and most == 2


def test_with_one_slot_another_tenants_job_is_not_starved_by_a_burst(tmp_path: Path) -> None:
    """One slot; acme runs one job and queues two; bravo's job, shown first in the queue, runs next."""
    with tenant_stack("local", tmp_path, relay_env=capped(1), speed=SLOW) as stack:
        acme = [stack.submit("acme", body(n))["id"] for n in range(3)]
        bravo = stack.submit("bravo", body(9))["id"]
        place = stack.job("bravo", bravo)["queue_position"]
        finals = stack.wait_final("admin", [*acme, bravo])
        created = [t["id"] for t in stack.sandbox_tasks()]
    assert place == 1
    assert [finals[job_id]["task_id"] for job_id in (acme[0], bravo)] == created[:2]


def test_a_tenant_at_its_own_cap_waits_while_another_tenant_runs(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    """Three slots, one per tenant: acme's second job waits though slots are free, bravo's starts at once."""
    with tenant_stack(backend, tmp_path, moto=moto, relay_env=capped(3, tenant_cap=1), speed=SLOW) as stack:
        acme = [stack.submit("acme", body(n)) for n in range(2)]
        bravo = stack.submit("bravo", body(9))
        finals = stack.wait_final("admin", [j["id"] for j in [*acme, bravo]])
        acme_tasks = {finals[j["id"]]["task_id"] for j in acme}
        most_acme, most = at_once(stack, acme_tasks), at_once(stack)
    assert [j["status"] for j in [*acme, bravo]] == ["submitted", "queued", "submitted"]
    assert {j["status"] for j in finals.values()} == {"published"}
    assert (most_acme, most) == (1, 2)


def submit_at_once(stack: TenantStack, count: int) -> list[tuple[float, int, dict[str, Any]]]:
    """``count`` submits from as many threads; each one's seconds, status and body."""
    def one(n: int) -> tuple[float, int, dict[str, Any]]:
        with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.key_of('acme')}"},
                          timeout=120) as client:
            started = time.monotonic()
            response = client.post("/v1/jobs", json=body(n))
            return time.monotonic() - started, response.status_code, response.json()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_a_plan_limit_of_one_task_is_waited_out_and_every_job_is_published(tmp_path: Path) -> None:
    """The sandbox takes one task at a time and answers 429 with Retry-After past it; the relay has no caps. Six
    jobs at once: every one is published from exactly one task, one at a time. (Creates finish within the
    reconcile grace here; see the next test for what happens when they do not.) The 429s never touch storage, so
    the embedded backend stands for both."""
    env = {"RELAY_RECONCILE_GRACE": "30"}
    with tenant_stack("local", tmp_path, relay_env=env, speed=200.0, max_concurrency=1) as stack:
        answers = submit_at_once(stack, 6)
        finals = stack.wait_final("acme", [b["id"] for _, _, b in answers], timeout=90)
        tasks, most = stack.sandbox_tasks(), at_once(stack)
    assert [status for _, status, _ in answers] == [202] * 6
    assert max(seconds for seconds, _, _ in answers) >= 1.0  # someone waited out a Retry-After
    assert {j["status"] for j in finals.values()} == {"published"}
    assert len(tasks) == 6 and {t["id"] for t in tasks} == {j["task_id"] for j in finals.values()}
    assert most == 1


def test_creates_that_wait_out_429s_past_the_reconcile_grace_still_record_their_task(tmp_path: Path) -> None:
    """RELAY_RECONCILE_GRACE is 1 s and the sandbox's Retry-After 1 s: the second and third creates wait longer."""
    with tenant_stack("local", tmp_path, speed=SLOW, max_concurrency=1) as stack:
        answers = submit_at_once(stack, 3)
        assert [status for _, status, _ in answers] == [202] * 3, [b for _, _, b in answers]
        finals = stack.wait_final("acme", [b["id"] for _, _, b in answers], timeout=60)
        tasks = stack.sandbox_tasks()
    assert {j["status"] for j in finals.values()} == {"published"}
    assert len(tasks) == 3
