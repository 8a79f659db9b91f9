"""Tenants and budgets under load, on both backends, with their figures in the reliability report.

* **Budget race:** many more concurrent submits than the tenant's budget holds; exactly as many as fit are
  accepted, and no read of ``GET /v1/usage`` during the race ever sees more held than the budget.
* **Isolation sweep:** several tenants submit at once with the same idempotency keys; then every tenant asks for
  every other tenant's jobs on every route, and for lists and usage: nothing leaks, and every answer is the 404 of
  a job that does not exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.harness import JOB_CREDITS, budget_race, isolation_sweep, record, stack, tenant_env, tenant_keys

pytestmark = pytest.mark.slow
ADMIN_KEY = "reliability-admin-key-0123456789"


def test_concurrent_submits_never_hold_more_than_the_budget(
        backend: str, moto_for: str | None, tmp_path: Path, scale: int) -> None:
    fits, submits = 10 * scale, 40 * scale
    budget = round(fits * JOB_CREDITS + JOB_CREDITS / 2, 2)  # room for ``fits`` jobs and half of one more
    env = {"RELAY_BUDGETS": f"default={budget}/day"}
    with stack(backend, tmp_path, moto=moto_for, relay_env=env, speed=20.0) as pipeline:
        figures = budget_race(pipeline, submits=submits, fits=fits, threads=min(submits, 40))
    record(f"budget-race[{backend}]", figures)
    assert (figures["accepted"], figures["refused"]) == (fits, submits - fits)
    assert figures["refusal_codes"] == {"budget_exceeded": submits - fits}
    assert figures["max_committed"] <= budget and figures["max_held"] <= budget
    assert figures["final_held_plus_spent"] == pytest.approx(fits * JOB_CREDITS) and figures["final_jobs"] == fits
    assert figures["sandbox_tasks"] == fits and figures["usage_reads"] > 0


def test_no_tenant_sees_another_tenants_jobs_or_usage(
        backend: str, moto_for: str | None, tmp_path: Path, scale: int) -> None:
    keys = tenant_keys(["north", "south", "east"])
    with stack(backend, tmp_path, moto=moto_for, relay_env=tenant_env(keys, ADMIN_KEY)) as pipeline:
        figures = isolation_sweep(pipeline, keys, ADMIN_KEY, jobs_each=4 * scale)
    record(f"tenant-isolation[{backend}]", figures)
    assert figures["leaks"] == 0 and figures["distinct_404s"] == 1
    assert figures["own_jobs_listed"] and figures["admin_sees_all"]
    assert figures["jobs"] == 12 * scale
