"""The budget use cases on the SQLite ledger: which budget is in force, holds refused with a 402's data,
settling to what EvoLink billed, and the figures of ``GET /v1/usage``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.adapters.local.budgets import SqliteBudgetLedger
from handlers.base.errors import BudgetExceeded
from handlers.domain.budgets import Budget, Per, Usage
from handlers.usecases.budget import (
    Hold,
    TenantUsage,
    budget_for,
    settle_hold,
    settled_credits,
    take_hold,
    usage_report,
)

T0 = 1_796_300_000.0  # 2026-12-03T12:13:20Z
TODAY, THIS_MONTH = "day:2026-12-03", "month:2026-12"
CONFIGURED = {"acme": Budget(100.0, Per.DAY)}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteBudgetLedger]:
    built = SqliteBudgetLedger(tmp_path / "jobs.db", clock=lambda: T0)
    yield built
    built.close()


def test_a_tenant_without_any_budget_has_none(ledger: SqliteBudgetLedger) -> None:
    assert budget_for("beta", CONFIGURED, ledger) is None


def test_the_configured_budget_is_in_force_until_one_is_set_at_run_time(ledger: SqliteBudgetLedger) -> None:
    assert budget_for("acme", CONFIGURED, ledger) == Budget(100.0, Per.DAY)
    ledger.set_budget("acme", Budget(3000.0, Per.MONTH))
    assert budget_for("acme", CONFIGURED, ledger) == Budget(3000.0, Per.MONTH)
    ledger.set_budget("acme", None)
    assert budget_for("acme", CONFIGURED, ledger) == Budget(100.0, Per.DAY)


def test_a_hold_within_the_budget_is_taken_in_the_budgets_period(ledger: SqliteBudgetLedger) -> None:
    assert take_hold(ledger, CONFIGURED, "acme", "job_a", 30.0, T0) == Hold(TODAY, 30.0)
    assert ledger.usage("acme", TODAY) == Usage("acme", TODAY, held=30.0, jobs=1)


def test_a_hold_under_a_monthly_budget_set_at_run_time_is_taken_in_the_month(ledger: SqliteBudgetLedger) -> None:
    ledger.set_budget("acme", Budget(3000.0, Per.MONTH))
    assert take_hold(ledger, CONFIGURED, "acme", "job_a", 300.0, T0) == Hold(THIS_MONTH, 300.0)


def test_a_tenant_without_a_budget_has_its_holds_recorded_in_the_month_and_never_refused(
        ledger: SqliteBudgetLedger) -> None:
    assert take_hold(ledger, CONFIGURED, "beta", "job_a", 1e7, T0) == Hold(THIS_MONTH, 1e7)
    assert ledger.usage("beta", THIS_MONTH) == Usage("beta", THIS_MONTH, held=1e7, jobs=1)


def test_a_hold_past_the_budget_raises_budget_exceeded_with_what_is_left_and_when_it_resets(
        ledger: SqliteBudgetLedger) -> None:
    take_hold(ledger, CONFIGURED, "acme", "job_a", 70.0, T0)
    with pytest.raises(BudgetExceeded, match="tenant 'acme' has 30 of its 100/day credit budget left") as raised:
        take_hold(ledger, CONFIGURED, "acme", "job_b", 40.0, T0)
    assert raised.value.as_dict() == {
        "code": "budget_exceeded", "message": raised.value.message, "tenant": "acme", "budget": 100.0,
        "remaining": 30.0, "resets_at": "2026-12-04T00:00:00.000000Z"}
    assert ledger.usage("acme", TODAY) == Usage("acme", TODAY, held=70.0, jobs=1)


def test_what_is_left_never_reads_below_zero(ledger: SqliteBudgetLedger) -> None:
    """Spending past the budget (EvoLink billed more than the estimate) leaves 0, not a negative figure."""
    take_hold(ledger, CONFIGURED, "acme", "job_a", 90.0, T0)
    settle_hold(ledger, "acme", TODAY, "job_a", used=120.0, reserved=None, billed=True)
    with pytest.raises(BudgetExceeded) as raised:
        take_hold(ledger, CONFIGURED, "acme", "job_b", 1.0, T0)
    assert raised.value.remaining == 0.0


def test_a_monthly_budget_resets_on_the_first_of_the_next_month(ledger: SqliteBudgetLedger) -> None:
    ledger.set_budget("acme", Budget(10.0, Per.MONTH))
    with pytest.raises(BudgetExceeded) as raised:
        take_hold(ledger, CONFIGURED, "acme", "job_a", 11.0, T0)
    assert raised.value.resets_at == "2027-01-01T00:00:00.000000Z"


def test_taking_the_hold_of_a_job_again_holds_nothing_more(ledger: SqliteBudgetLedger) -> None:
    take_hold(ledger, CONFIGURED, "acme", "job_a", 60.0, T0)
    assert take_hold(ledger, CONFIGURED, "acme", "job_a", 60.0, T0) == Hold(TODAY, 60.0)
    assert ledger.usage("acme", TODAY) == Usage("acme", TODAY, held=60.0, jobs=1)


@pytest.mark.parametrize(("used", "reserved", "held", "billed", "expected"), [
    (25.0, 30.0, 40.0, True, 25.0),  # what EvoLink used
    (None, 30.0, 40.0, True, 30.0),  # used never came: what it reserved
    (None, None, 40.0, True, 40.0),  # nothing reported: what was held stays spent
    (None, None, None, True, 0.0),
    (25.0, 30.0, 40.0, False, 0.0),  # a failed or cancelled task is not billed
    (float("nan"), 30.0, None, True, 30.0),  # a figure that is not a number counts as missing
    (-5.0, 30.0, None, True, 0.0),  # a negative figure counts as nothing spent
], ids=["used", "reserved", "held", "nothing", "not-billed", "nan-used", "negative-used"])
def test_a_hold_settles_to_what_was_billed(used: float | None, reserved: float | None, held: float | None,
                                          billed: bool, expected: float) -> None:
    assert settled_credits(used=used, reserved=reserved, held=held, billed=billed) == expected


def test_settling_a_hold_moves_the_billed_credits_to_spent(ledger: SqliteBudgetLedger) -> None:
    hold = take_hold(ledger, CONFIGURED, "acme", "job_a", 30.0, T0)
    assert settle_hold(ledger, "acme", hold.period, "job_a", used=None, reserved=28.0, billed=True) == 28.0
    assert ledger.usage("acme", TODAY) == Usage("acme", TODAY, spent=28.0, jobs=1)


def test_a_task_that_was_not_billed_releases_its_hold(ledger: SqliteBudgetLedger) -> None:
    hold = take_hold(ledger, CONFIGURED, "acme", "job_a", 30.0, T0)
    settle_hold(ledger, "acme", hold.period, "job_a", used=30.0, reserved=30.0, billed=False)
    assert ledger.usage("acme", TODAY) == Usage("acme", TODAY, jobs=1)


def test_settling_again_changes_nothing(ledger: SqliteBudgetLedger) -> None:
    hold = take_hold(ledger, CONFIGURED, "acme", "job_a", 30.0, T0)
    settle_hold(ledger, "acme", hold.period, "job_a", used=20.0, reserved=None, billed=True)
    settle_hold(ledger, "acme", hold.period, "job_a", used=None, reserved=None, billed=False)
    assert ledger.usage("acme", TODAY) == Usage("acme", TODAY, spent=20.0, jobs=1)


def test_the_usage_report_of_named_tenants_shows_their_current_period(ledger: SqliteBudgetLedger) -> None:
    take_hold(ledger, CONFIGURED, "acme", "job_a", 30.0, T0)
    take_hold(ledger, CONFIGURED, "acme", "job_b", 20.0, T0)
    settle_hold(ledger, "acme", TODAY, "job_a", used=25.0, reserved=None, billed=True)
    report = usage_report(ledger, CONFIGURED, ["acme"], T0)
    assert report == [TenantUsage("acme", TODAY, Budget(100.0, Per.DAY), held=20.0, spent=25.0, jobs=2,
                                  resets_at=T0 - 44_000.0 + 86_400.0)]
    assert report[0].as_dict() == {
        "tenant": "acme", "period": TODAY, "budget": {"credits": 100.0, "per": "day"}, "held": 20.0,
        "spent": 25.0, "remaining": 55.0, "jobs": 2, "resets_at": "2026-12-04T00:00:00.000000Z"}


def test_the_usage_report_of_a_tenant_without_budget_or_holds_is_zero_with_nothing_remaining(
        ledger: SqliteBudgetLedger) -> None:
    assert usage_report(ledger, CONFIGURED, ["beta"], T0)[0].as_dict() == {
        "tenant": "beta", "period": THIS_MONTH, "budget": None, "held": 0.0, "spent": 0.0, "remaining": None,
        "jobs": 0, "resets_at": "2027-01-01T00:00:00.000000Z"}


def test_the_usage_report_of_every_tenant_lists_the_budgeted_and_the_active(ledger: SqliteBudgetLedger) -> None:
    """An admin sees each tenant with a budget (configured or set) and each with holds this day or month."""
    ledger.set_budget("gamma", Budget(5.0, Per.DAY))
    take_hold(ledger, CONFIGURED, "beta", "job_b", 7.0, T0)
    take_hold(ledger, {}, "delta", "job_d", 1.0, T0 - 40 * 86_400)  # last month's: not this month's usage
    report = usage_report(ledger, CONFIGURED, None, T0)
    assert [(line.tenant, line.period, line.held) for line in report] == [
        ("acme", TODAY, 0.0), ("beta", THIS_MONTH, 7.0), ("gamma", TODAY, 0.0)]
