"""BudgetLedger contract: holds within a budget, refusals that change nothing, idempotent holds and settles,
usage per tenant and period, run-time budgets, and the race: concurrent holds never pass a budget together."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.adapters.aws import AwsNames, aws_clients
from handlers.adapters.aws.bootstrap import ensure_table
from handlers.domain.budgets import Budget, Per, Usage, period_of
from handlers.ports import BudgetLedger
from tests.contract.conftest import BACKENDS, aws_names, close
from tests.support.budgets import LedgerRecipe, dynamo_ledger, hold_in_processes, hold_in_threads, sqlite_ledger

T0 = 1_796_300_000.0  # 2026-12-03T12:13:20Z
DAY = period_of(T0, Per.DAY)
MONTH = period_of(T0, Per.MONTH)


def _aws_recipe(folder: Path, endpoint: str) -> LedgerRecipe:
    table = aws_names(folder).table
    ensure_table(aws_clients(AwsNames(), endpoint_url=endpoint).dynamodb, table)
    return functools.partial(dynamo_ledger, endpoint, table)


@pytest.fixture(params=BACKENDS)
def ledger_recipe(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerRecipe:
    """A picklable recipe for a ledger on the backend: the job store's SQLite file, or the job table on moto."""
    if request.param == "aws":
        return _aws_recipe(tmp_path, request.getfixturevalue("aws_endpoint"))
    return functools.partial(sqlite_ledger, tmp_path / "jobs.db")


@pytest.fixture
def ledger(ledger_recipe: LedgerRecipe) -> Iterator[BudgetLedger]:
    built = ledger_recipe()
    yield built
    close(built)


def test_a_hold_within_the_budget_is_taken_and_counted(ledger: BudgetLedger) -> None:
    assert ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=30.0, jobs=1)
    assert ledger.hold("acme", DAY, "job_b", 20.5, limit=100.0) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=50.5, jobs=2)
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=50.5, jobs=2)


def test_a_hold_that_fills_the_budget_exactly_is_taken(ledger: BudgetLedger) -> None:
    ledger.hold("acme", DAY, "job_a", 60.0, limit=100.0)
    assert ledger.hold("acme", DAY, "job_b", 40.0, limit=100.0) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=100.0, jobs=2)


def test_a_hold_past_the_budget_is_refused_and_changes_nothing(ledger: BudgetLedger) -> None:
    ledger.hold("acme", DAY, "job_a", 60.0, limit=100.0)
    assert ledger.hold("acme", DAY, "job_b", 40.5, limit=100.0) is False
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=60.0, jobs=1)
    assert ledger.hold("acme", DAY, "job_b", 40.0, limit=100.0) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=100.0, jobs=2)


def test_a_first_hold_larger_than_the_whole_budget_is_refused(ledger: BudgetLedger) -> None:
    assert ledger.hold("acme", DAY, "job_a", 100.5, limit=100.0) is False
    assert ledger.usage("acme", DAY) == Usage("acme", DAY)
    assert ledger.usages(DAY) == []


def test_a_hold_without_a_limit_is_always_taken(ledger: BudgetLedger) -> None:
    assert ledger.hold("acme", DAY, "job_a", 1e9, limit=None) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=1e9, jobs=1)


def test_a_budget_of_zero_refuses_every_hold_but_a_free_one(ledger: BudgetLedger) -> None:
    assert ledger.hold("acme", DAY, "job_a", 0.5, limit=0.0) is False
    assert ledger.hold("acme", DAY, "job_b", 0.0, limit=0.0) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, jobs=1)


def test_holding_again_for_the_same_job_holds_nothing_more(ledger: BudgetLedger) -> None:
    ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0)
    assert ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=30.0, jobs=1)
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=30.0, jobs=1)


def test_holding_again_answers_held_even_where_a_new_hold_would_not_fit(ledger: BudgetLedger) -> None:
    """A retried submit of a job that holds is never refused: it holds already."""
    ledger.hold("acme", DAY, "job_a", 80.0, limit=100.0)
    assert ledger.hold("acme", DAY, "job_a", 80.0, limit=100.0) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=80.0, jobs=1)
    assert ledger.hold("acme", DAY, "job_a", 500.0, limit=100.0) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=80.0, jobs=1)


def test_settle_turns_the_hold_into_spent_credits(ledger: BudgetLedger) -> None:
    ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0)
    ledger.hold("acme", DAY, "job_b", 20.0, limit=100.0)
    ledger.settle("acme", DAY, "job_a", 25.5)
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=20.0, spent=25.5, jobs=2)


def test_settle_with_what_was_held_settles_once_and_a_job_that_never_held_changes_nothing(
        ledger: BudgetLedger) -> None:
    ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0)
    ledger.hold("acme", DAY, "job_b", 20.0, limit=100.0)
    ledger.settle("acme", DAY, "job_a", 25.5, held=30.0)
    ledger.settle("acme", DAY, "job_a", 25.5, held=30.0)
    ledger.settle("acme", DAY, "job_never", 5.0, held=5.0)
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=20.0, spent=25.5, jobs=2)


def test_settle_may_spend_more_than_was_held(ledger: BudgetLedger) -> None:
    """EvoLink bills what it bills: the estimate was low, the budget records the truth."""
    ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0)
    ledger.settle("acme", DAY, "job_a", 45.0)
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, spent=45.0, jobs=1)


def test_settle_to_zero_releases_the_hold(ledger: BudgetLedger) -> None:
    ledger.hold("acme", DAY, "job_a", 0.3, limit=100.0)
    ledger.hold("acme", DAY, "job_b", 0.1, limit=100.0)
    ledger.settle("acme", DAY, "job_a", 0.0)
    ledger.settle("acme", DAY, "job_b", 0.0)
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=0.0, spent=0.0, jobs=2)


def test_released_credits_can_be_held_again(ledger: BudgetLedger) -> None:
    ledger.hold("acme", DAY, "job_a", 100.0, limit=100.0)
    ledger.settle("acme", DAY, "job_a", 0.0)
    assert ledger.hold("acme", DAY, "job_b", 100.0, limit=100.0) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=100.0, jobs=2)


def test_spent_credits_count_against_the_budget(ledger: BudgetLedger) -> None:
    ledger.hold("acme", DAY, "job_a", 50.0, limit=100.0)
    ledger.settle("acme", DAY, "job_a", 70.0)
    assert ledger.hold("acme", DAY, "job_b", 30.5, limit=100.0) is False
    assert ledger.hold("acme", DAY, "job_b", 30.0, limit=100.0) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, spent=70.0, held=30.0, jobs=2)


def test_settling_twice_changes_nothing(ledger: BudgetLedger) -> None:
    ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0)
    ledger.settle("acme", DAY, "job_a", 25.0)
    ledger.settle("acme", DAY, "job_a", 10.0)
    ledger.settle("acme", DAY, "job_a", 0.0)
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, spent=25.0, jobs=1)


def test_settle_without_a_hold_changes_nothing(ledger: BudgetLedger) -> None:
    ledger.settle("acme", DAY, "job_never_held", 25.0)
    assert ledger.usage("acme", DAY) == Usage("acme", DAY)
    assert ledger.usages(DAY) == []


def test_a_settled_job_holds_nothing_when_held_again(ledger: BudgetLedger) -> None:
    """Holds are keyed by job id for good: a late retry of a finished job's submit holds nothing."""
    ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0)
    ledger.settle("acme", DAY, "job_a", 25.0)
    assert ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0) is True
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, spent=25.0, jobs=1)


def test_amounts_add_up_exactly(ledger: BudgetLedger) -> None:
    """Ten holds of 0.1 fill a budget of 1 exactly (floating point would stop at nine or drift)."""
    taken = [ledger.hold("acme", DAY, f"job_{n}", 0.1, limit=1.0) for n in range(11)]
    assert taken == [True] * 10 + [False]
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=1.0, jobs=10)


def test_the_usage_of_an_unknown_tenant_is_zero(ledger: BudgetLedger) -> None:
    assert ledger.usage("nobody", DAY) == Usage("nobody", DAY, held=0.0, spent=0.0, jobs=0)


def test_usages_lists_the_tenants_of_the_period_by_name(ledger: BudgetLedger) -> None:
    ledger.hold("zeta", DAY, "job_z", 5.0, limit=None)
    ledger.hold("acme", DAY, "job_a", 10.0, limit=100.0)
    ledger.hold("acme", DAY, "job_b", 3.0, limit=100.0)
    ledger.settle("acme", DAY, "job_a", 8.0)
    ledger.hold("beta", MONTH, "job_m", 7.0, limit=None)
    ledger.hold("gamma", DAY, "job_g", 50.0, limit=10.0)  # refused: gamma holds nothing
    assert ledger.usages(DAY) == [Usage("acme", DAY, held=3.0, spent=8.0, jobs=2), Usage("zeta", DAY, held=5.0, jobs=1)]
    assert ledger.usages(MONTH) == [Usage("beta", MONTH, held=7.0, jobs=1)]
    assert ledger.usages("day:2026-12-04") == []


def test_periods_are_separate(ledger: BudgetLedger) -> None:
    tomorrow = period_of(T0 + 86_400, Per.DAY)
    ledger.hold("acme", DAY, "job_a", 100.0, limit=100.0)
    assert ledger.hold("acme", tomorrow, "job_b", 100.0, limit=100.0) is True
    assert ledger.usage("acme", tomorrow) == Usage("acme", tomorrow, held=100.0, jobs=1)
    assert ledger.hold("acme", MONTH, "job_c", 100.0, limit=100.0) is True
    assert ledger.usage("acme", MONTH) == Usage("acme", MONTH, held=100.0, jobs=1)
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=100.0, jobs=1)


def test_tenants_are_separate(ledger: BudgetLedger) -> None:
    ledger.hold("acme", DAY, "job_a", 100.0, limit=100.0)
    assert ledger.hold("beta", DAY, "job_b", 100.0, limit=100.0) is True
    assert ledger.usage("beta", DAY) == Usage("beta", DAY, held=100.0, jobs=1)


def test_settle_moves_credits_in_the_period_the_hold_was_taken(ledger: BudgetLedger) -> None:
    """A job that runs past midnight settles against the day it was held in."""
    ledger.hold("acme", DAY, "job_a", 30.0, limit=100.0)
    ledger.settle("acme", period_of(T0 + 86_400, Per.DAY), "job_a", 20.0)
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, spent=20.0, jobs=1)
    assert ledger.usages(period_of(T0 + 86_400, Per.DAY)) == []


@pytest.mark.parametrize("credits", [-1.0, float("nan"), float("inf")])
def test_a_hold_of_a_credit_amount_that_is_not_one_is_refused_by_name(ledger: BudgetLedger, credits: float) -> None:
    with pytest.raises(ValueError, match="credits must be a finite number of credits, 0 or more"):
        ledger.hold("acme", DAY, "job_a", credits, limit=100.0)
    assert ledger.usage("acme", DAY) == Usage("acme", DAY)


def test_budgets_set_at_run_time_round_trip(ledger: BudgetLedger) -> None:
    assert ledger.budgets() == {}
    ledger.set_budget("acme", Budget(5000.0, Per.DAY))
    ledger.set_budget("beta", Budget(123.25, Per.MONTH))
    assert ledger.budgets() == {"acme": Budget(5000.0, Per.DAY), "beta": Budget(123.25, Per.MONTH)}


def test_setting_a_budget_again_replaces_it(ledger: BudgetLedger) -> None:
    ledger.set_budget("acme", Budget(5000.0, Per.DAY))
    ledger.set_budget("acme", Budget(0.0, Per.MONTH))
    assert ledger.budgets() == {"acme": Budget(0.0, Per.MONTH)}


def test_a_budget_set_to_none_is_removed_and_removing_again_is_harmless(ledger: BudgetLedger) -> None:
    ledger.set_budget("acme", Budget(5000.0, Per.DAY))
    ledger.set_budget("beta", Budget(10.0, Per.DAY))
    ledger.set_budget("acme", None)
    ledger.set_budget("acme", None)
    ledger.set_budget("nobody", None)
    assert ledger.budgets() == {"beta": Budget(10.0, Per.DAY)}


# --- the race: a budget that fits only FITS of RACERS concurrent holds ------------------------------
RACERS, FITS, CREDITS = 64, 10, 2.5
LIMIT = FITS * CREDITS + 2.0  # room for FITS holds and a remainder smaller than one more


def test_concurrent_holds_from_threads_never_pass_the_budget_together(ledger: BudgetLedger) -> None:
    job_ids = [f"job_{n:02d}" for n in range(RACERS)]
    taken = hold_in_threads(ledger, "acme", DAY, job_ids, CREDITS, LIMIT)
    assert len(taken) == FITS
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=FITS * CREDITS, jobs=FITS)


def test_concurrent_holds_from_processes_never_pass_the_budget_together(ledger_recipe: LedgerRecipe) -> None:
    job_ids = [f"job_{n:02d}" for n in range(RACERS)]
    taken = hold_in_processes(ledger_recipe, "acme", DAY, job_ids, CREDITS, LIMIT)
    assert len(taken) == len(set(taken)) == FITS
    ledger = ledger_recipe()
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=FITS * CREDITS, jobs=FITS)
    close(ledger)


def test_concurrent_holds_for_one_job_hold_once(ledger: BudgetLedger) -> None:
    """A submit retried many times at once holds once; every attempt is answered with the usage."""
    taken = hold_in_threads(ledger, "acme", DAY, ["job_a"] * 16, CREDITS, LIMIT)
    assert taken == ["job_a"] * 16
    assert ledger.usage("acme", DAY) == Usage("acme", DAY, held=CREDITS, jobs=1)
