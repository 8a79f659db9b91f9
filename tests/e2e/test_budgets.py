"""Budgets over real sockets, on both backends: a submit past the budget is refused before it reaches the sandbox,
holds settle to what the sandbox billed (or are released when the task failed), and concurrent submits never hold
more than the budget.

Every job here is :data:`~tests.support.tenants.REQUEST`, which the default price table (and the sandbox, billing
by the same table) puts at 11.12 credits. The tests that need no special sandbox share one relay per backend, each
with a tenant (and budget) of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.tenants import JOB_CREDITS, REQUEST, TenantStack, tenant_stack

pytestmark = pytest.mark.e2e


BUDGETS = {"over": "35/day", "settle": "100/day", "race": "115/day"}


@pytest.fixture(params=["local", pytest.param("aws", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module", params=["local", pytest.param("aws", marks=pytest.mark.integration)])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenantStack]:
    """One sandbox and relay per backend, with the tenants of :data:`BUDGETS` and their budgets."""
    backend = str(request.param)
    moto = str(request.getfixturevalue("moto_server")) if backend == "aws" else None
    budgets = ",".join(f"{tenant}={budget}" for tenant, budget in BUDGETS.items())
    with tenant_stack(backend, tmp_path_factory.mktemp(f"budgets-{backend}"), moto=moto, tenants=tuple(BUDGETS),
                      relay_env={"RELAY_BUDGETS": budgets}) as running:
        yield running


@pytest.fixture
def moto(backend: str, request: pytest.FixtureRequest) -> str | None:
    return str(request.getfixturevalue("moto_server")) if backend == "aws" else None


def next_utc_midnight() -> str:
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    return f"{tomorrow.isoformat()}T00:00:00"


def test_the_submit_past_the_budget_is_402_with_what_remains_and_never_reaches_the_sandbox(
        stack: TenantStack) -> None:
    """A budget of 35 credits a day fits three jobs: the fourth is refused, and the sandbox creates three tasks."""
    before = len(stack.sandbox_tasks())
    jobs = [stack.submit("over", {**REQUEST, "metadata": {"n": n}})["id"] for n in range(3)]
    refused = stack.api("over").post("/v1/jobs", json={**REQUEST, "metadata": {"n": 3}})
    finals = stack.wait_final("over", jobs)
    tasks = len(stack.sandbox_tasks()) - before
    listed = stack.api("over").get("/v1/jobs").json()["jobs"]
    unbudgeted = stack.api("acme").post("/v1/jobs", json={**REQUEST, "metadata": {"n": 3}})
    error = refused.json()["error"]
    assert (refused.status_code, error["code"], error["tenant"]) == (402, "budget_exceeded", "over")
    assert error["budget"] == 35 and error["remaining"] == pytest.approx(35 - 3 * JOB_CREDITS)
    assert error["resets_at"].startswith(next_utc_midnight())
    assert tasks == 3 and len(listed) == 3  # the refused job was never made
    assert {j["status"] for j in finals.values()} == {"published"}
    assert unbudgeted.status_code == 202  # a tenant without a budget is never refused


def test_completed_jobs_settle_their_hold_to_what_the_sandbox_billed_and_usage_adds_up(stack: TenantStack) -> None:
    jobs = [stack.submit("settle", {**REQUEST, "metadata": {"n": n}}) for n in range(2)]
    held = stack.usage("settle")["settle"]
    finals = stack.wait_final("settle", [j["id"] for j in jobs])
    settled = stack.usage("settle")["settle"]
    billed = {t["id"]: t["credits"] for t in stack.sandbox_tasks()}
    assert all(j["credits"] == {"estimated": JOB_CREDITS, "held": JOB_CREDITS, "reserved": JOB_CREDITS,
                                "used": billed[j["task_id"]]} for j in finals.values())
    assert held["held"] + held["spent"] == pytest.approx(2 * JOB_CREDITS) and held["jobs"] == 2
    assert (settled["held"], settled["spent"], settled["jobs"]) == (0, pytest.approx(2 * JOB_CREDITS), 2)
    assert settled["remaining"] == pytest.approx(100 - settled["spent"])
    assert settled["budget"] == {"credits": 100, "per": "day"} and settled["period"].startswith("day:")


def test_failed_tasks_release_their_hold_so_the_budget_takes_new_jobs(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    """Budget for two jobs; both fail (the sandbox fails every task with a code that is never retried): nothing is
    spent, and two more fit."""
    env = {"RELAY_BUDGETS": "acme=25/day"}
    with tenant_stack(backend, tmp_path, moto=moto, relay_env=env, fail_rate=1.0,
                      fail_code="content_policy_violation") as stack:
        first = [stack.submit("acme", {**REQUEST, "metadata": {"n": n}})["id"] for n in range(2)]
        failed = stack.wait_final("acme", first)
        usage = stack.usage("acme")["acme"]
        again = [stack.api("acme").post("/v1/jobs", json={**REQUEST, "metadata": {"n": n}}).status_code
                 for n in range(2, 4)]
    assert {j["status"] for j in failed.values()} == {"failed"}
    assert {j["credits"]["used"] for j in failed.values()} == {None}
    assert (usage["held"], usage["spent"], usage["jobs"], usage["remaining"]) == (0, 0, 2, 25)
    assert again == [202, 202]


def test_forty_concurrent_submits_against_a_budget_for_ten_accept_exactly_ten(stack: TenantStack) -> None:
    """40 distinct jobs from 20 threads at once; 115 credits hold ten of them (11.12 each) and not eleven."""
    answers = stack.submit_concurrently("race", 40, threads=20, prefix="race")
    usage = stack.usage("race")["race"]
    accepted = {a.json()["task_id"] for a in answers if a.status_code == 202}
    tasks = {t["id"] for t in stack.sandbox_tasks()}
    assert sorted(a.status_code for a in answers) == [202] * 10 + [402] * 30
    assert {a.json()["error"]["code"] for a in answers if a.status_code != 202} == {"budget_exceeded"}
    assert usage["jobs"] == 10 and usage["held"] + usage["spent"] == pytest.approx(10 * JOB_CREDITS)
    assert len(accepted) == 10 and accepted <= tasks


def test_an_account_out_of_credits_fails_the_job_at_once_and_releases_its_hold(tmp_path: Path) -> None:
    """The sandbox's quota (15 credits) takes one task: the second create is EvoLink's 402 insufficient_quota, which
    fails the job (no retry, one event) and gives its budget hold back."""
    env = {"RELAY_BUDGETS": "acme=100/day", "RELAY_SUBSCRIBERS": "audit:*"}
    with tenant_stack("local", tmp_path, relay_env=env, quota=15.0) as stack:
        first = stack.submit("acme")["id"]
        stack.wait_final("acme", [first])
        second = stack.submit("acme", {**REQUEST, "metadata": {"n": 2}})
        final = stack.wait_final("acme", [second["id"]])[second["id"]]
        usage = stack.usage("acme")["acme"]
        events = stack.subscriber_messages("audit")
        tasks = stack.sandbox_tasks()
    assert (final["status"], final["error"]["provider_code"]) == ("failed", "insufficient_quota")
    assert [e["type"].rsplit(".", 1)[1] for e in events if e["subject"] == second["id"]] == ["failed"]
    assert (usage["held"], usage["spent"]) == (0, pytest.approx(JOB_CREDITS))
    assert len(tasks) == 1
