"""Budgets: how many credits a tenant may hold and spend per UTC day or month.

A job's estimate is *held* against its tenant's budget for the period the job was created in,
before anything reaches EvoLink; when the job ends the hold *settles* to what EvoLink billed
(``credits_used``, else ``credits_reserved``) or to nothing for a failed or cancelled task. The
ledger (:class:`handlers.ports.BudgetLedger`) takes a hold only if the tenant's held plus spent
credits plus the new hold stay within the budget, in one conditional write.

``RELAY_BUDGETS`` is a comma-separated list of ``TENANT=CREDITS/day`` or ``TENANT=CREDITS/month``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from handlers.base.errors import ConfigurationError

__all__ = ["Budget", "Per", "Usage", "parse_budgets", "period_of", "period_resets_at"]


class Per(StrEnum):
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Budget:
    credits: float
    per: Per

    def __str__(self) -> str:
        return f"{_plain(self.credits)}/{self.per.value}"


def _plain(credits: float) -> str:
    """A figure as people write it: ``1500000``, ``0.5``; never an exponent."""
    return f"{credits:.6f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class Usage:
    """One tenant's figures for one period: ``held`` by running jobs, ``spent`` by ended ones, ``jobs`` held for."""

    tenant: str
    period: str
    held: float = 0.0
    spent: float = 0.0
    jobs: int = 0


def period_of(now: float, per: Per) -> str:
    """The UTC period ``now`` falls in: ``day:2026-12-03`` or ``month:2026-12``."""
    moment = datetime.fromtimestamp(now, UTC)
    return f"day:{moment:%Y-%m-%d}" if per is Per.DAY else f"month:{moment:%Y-%m}"


def period_resets_at(period: str) -> float:
    """When ``period`` ends (the next one starts), in Unix seconds."""
    kind, _, stamp = period.partition(":")
    if kind == Per.DAY.value:
        start = datetime.strptime(stamp, "%Y-%m-%d").replace(tzinfo=UTC)
        return start.timestamp() + 86_400.0
    start = datetime.strptime(stamp, "%Y-%m").replace(tzinfo=UTC)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()


def _budget(entry: str, variable: str) -> tuple[str, Budget]:
    tenant, sep, rest = entry.partition("=")
    amount, slash, per = rest.partition("/")
    problem = None
    if not sep or not tenant.strip() or not slash:
        problem = "is not TENANT=CREDITS/day or TENANT=CREDITS/month"
    elif per.strip() not in {p.value for p in Per}:
        problem = f"has period {per.strip()!r}; use day or month"
    else:
        try:
            credits = float(amount)
        except ValueError:
            problem = f"has {amount.strip()!r} credits; use a number"
        else:
            if not credits >= 0 or credits == float("inf"):
                problem = "needs a finite number of credits, 0 or more"
    if problem is not None:
        raise ConfigurationError(f"{variable}: entry {entry.strip()!r} {problem}")
    return tenant.strip(), Budget(credits, Per(per.strip()))


def parse_budgets(text: str, variable: str = "RELAY_BUDGETS") -> dict[str, Budget]:
    """``acme=5000/day, beta=100000/month`` as budgets by tenant; one line naming a bad entry otherwise."""
    budgets: dict[str, Budget] = {}
    for entry in (e for e in text.split(",") if e.strip()):
        tenant, budget = _budget(entry, variable)
        if tenant in budgets:
            raise ConfigurationError(f"{variable}: tenant {tenant!r} has two entries")
        budgets[tenant] = budget
    return budgets
