"""Budgets at work: hold a job's estimate before it reaches EvoLink, settle the hold when it ends, report usage.

The budget in force for a tenant is the one set at run time (``seedance-relay tenants …``,
kept by the ledger), else the one ``RELAY_BUDGETS`` configured, else none. A tenant without
a budget still has every hold recorded, in the month it was taken (:data:`UNBUDGETED_PER`), so
its usage shows; nothing is ever refused for it.

A hold is keyed by the job id, so a retried submit holds nothing more. When the job ends its
hold settles to what EvoLink billed: ``credits_used``, else ``credits_reserved``, else the
credits held; a failed or cancelled task is not billed and releases its hold.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from handlers.base.errors import BudgetExceeded
from handlers.base.logs import get_logger
from handlers.domain.budgets import Budget, Per, Usage, period_of, period_resets_at
from handlers.domain.jobs import rfc3339
from handlers.ports import BudgetLedger

__all__ = ["UNBUDGETED_PER", "Hold", "TenantUsage", "budget_for", "budgets_in_force", "remaining", "settle_hold",
           "settled_credits", "take_hold", "usage_report"]

log = get_logger(__name__)

UNBUDGETED_PER = Per.MONTH
"""The period the holds of a tenant without a budget are recorded in."""


class Hold(NamedTuple):
    """Where a job's hold was taken (record ``period`` on the job: settling needs it) and what it holds."""

    period: str
    held: float


@dataclass(frozen=True, slots=True)
class TenantUsage:
    """One tenant's line of ``GET /v1/usage``: its current period and what is held, spent and left in it."""

    tenant: str
    period: str
    budget: Budget | None
    held: float
    spent: float
    jobs: int
    resets_at: float

    @property
    def remaining(self) -> float | None:
        return None if self.budget is None else remaining(self.budget, self.held, self.spent)

    def as_dict(self) -> dict[str, Any]:
        budget = self.budget
        return {"tenant": self.tenant, "period": self.period,
                "budget": None if budget is None else {"credits": budget.credits, "per": budget.per.value},
                "held": self.held, "spent": self.spent, "remaining": self.remaining, "jobs": self.jobs,
                "resets_at": rfc3339(self.resets_at)}


def budgets_in_force(configured: Mapping[str, Budget], ledger: BudgetLedger) -> dict[str, Budget]:
    """``configured`` (``RELAY_BUDGETS``) with the budgets set at run time laid over it (one ledger read)."""
    return {**configured, **ledger.budgets()}


def budget_for(tenant: str, configured: Mapping[str, Budget], ledger: BudgetLedger) -> Budget | None:
    """The tenant's budget set at run time, else its configured one, else ``None``."""
    return budgets_in_force(configured, ledger).get(tenant)


def remaining(budget: Budget, held: float, spent: float) -> float:
    """What is left of ``budget`` after ``held`` and ``spent``, never below ``0``."""
    return max(0.0, budget.credits - held - spent)


def take_hold(ledger: BudgetLedger, configured: Mapping[str, Budget], tenant: str, job_id: str, credits: float,
              now: float) -> Hold:
    """Hold ``credits`` for ``job_id`` in the tenant's current period, or raise ``BudgetExceeded``.

    Call it before anything reaches EvoLink. Holding again for the same job holds nothing more.
    """
    budget = budget_for(tenant, configured, ledger)
    period = period_of(now, budget.per if budget is not None else UNBUDGETED_PER)
    if not ledger.hold(tenant, period, job_id, credits, limit=None if budget is None else budget.credits):
        assert budget is not None  # only a limit refuses
        raise _exceeded(ledger.usage(tenant, period), budget, credits)
    log.debug("budget.held", tenant=tenant, job_id=job_id, period=period, credits=credits)
    return Hold(period, credits)


def settled_credits(*, used: float | None, reserved: float | None, held: float | None, billed: bool) -> float:
    """What a job's hold settles to: nothing when the task was not billed (failed, cancelled); else
    ``used``, else ``reserved``, else what was ``held``, else nothing. Figures that are not a finite
    number count as missing, and a negative one as ``0``."""
    if not billed:
        return 0.0
    for figure in (used, reserved, held):
        if figure is not None and math.isfinite(figure):
            return max(0.0, figure)
    return 0.0


def settle_hold(ledger: BudgetLedger, tenant: str, period: str, job_id: str, *, used: float | None,
                reserved: float | None, billed: bool, held: float | None = None) -> float:
    """Settle the hold of ``job_id`` (see :func:`settled_credits`) and return the credits it settled to.

    Safe to repeat: a hold settles once, and a job that never held changes nothing."""
    credits = settled_credits(used=used, reserved=reserved, held=held, billed=billed)
    ledger.settle(tenant, period, job_id, credits, held=held)
    log.debug("budget.settled", tenant=tenant, job_id=job_id, period=period, credits=credits, billed=billed,
             reported="used" if used is not None else "reserved" if reserved is not None else None)
    return credits


def usage_report(ledger: BudgetLedger, configured: Mapping[str, Budget], tenants: Collection[str] | None,
                 now: float) -> list[TenantUsage]:
    """The usage of ``tenants`` (``None``: every tenant with a budget or with holds this day or month), by name.

    Each tenant's line is for its current period: its budget's, or the month without a budget."""
    in_force = budgets_in_force(configured, ledger)
    if tenants is None:
        active = {usage.tenant for per in Per for usage in ledger.usages(period_of(now, per))}
        tenants = {*in_force, *active}
    return [_line(ledger, tenant, in_force.get(tenant), now) for tenant in sorted(set(tenants))]


def _line(ledger: BudgetLedger, tenant: str, budget: Budget | None, now: float) -> TenantUsage:
    period = period_of(now, budget.per if budget is not None else UNBUDGETED_PER)
    usage = ledger.usage(tenant, period)
    return TenantUsage(tenant, period, budget, usage.held, usage.spent, usage.jobs, period_resets_at(period))


def _exceeded(usage: Usage, budget: Budget, credits: float) -> BudgetExceeded:
    left = remaining(budget, usage.held, usage.spent)
    resets_at = rfc3339(period_resets_at(usage.period))
    log.info("budget.refused", tenant=usage.tenant, period=usage.period, credits=credits, held=usage.held,
             spent=usage.spent, budget=str(budget))
    return BudgetExceeded(
        f"tenant {usage.tenant!r} has {left:g} of its {budget} credit budget left and this job needs an "
        f"estimated {credits:g}; the budget resets at {resets_at}",
        tenant=usage.tenant, budget=budget.credits, remaining=left, resets_at=resets_at)
