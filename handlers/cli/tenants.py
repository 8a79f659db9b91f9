"""``seedance-relay tenants budget|list``: budgets set at run time and each tenant's usage, on the backend itself.

Like ``keys``, these commands open the relay's storage directly (``RELAY_BACKEND``: the local
database under ``RELAY_DATA_DIR``, or the DynamoDB table ``RELAY_TABLE``) rather than calling the API.
A budget set here is kept by the budget ledger and overrides ``RELAY_BUDGETS`` until removed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import click

from handlers.app.settings import Settings
from handlers.base.errors import ConfigurationError
from handlers.base.logs import configure
from handlers.domain.budgets import Budget, parse_budgets
from handlers.domain.tenancy import check_tenant
from handlers.ports import BudgetLedger, KeyStore
from handlers.usecases.budget import TenantUsage, usage_report
from handlers.usecases.keys import list_keys

__all__ = ["tenants"]

NONE = "none"  # the BUDGET that removes a tenant's run-time budget
CONFIG, RUN_TIME = "config", "run_time"  # where a budget in force comes from (RELAY_BUDGETS, or set here)
_ACCEPTED = f"use CREDITS/day or CREDITS/month (CREDITS a number, 0 or more), or {NONE}"
_COLUMNS = ("TENANT", "BUDGET", "SET BY", "PERIOD", "HELD", "SPENT", "REMAINING", "JOBS", "RESETS (UTC)")
_as_json = click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")


@click.group(short_help="Tenants: budgets at run time, and usage (on the backend).")
def tenants() -> None:
    """Tenants' credit budgets and usage, in the relay's storage (RELAY_BACKEND: the local database
    under RELAY_DATA_DIR, or the DynamoDB table RELAY_TABLE). A budget set with `budget` overrides
    the tenant's RELAY_BUDGETS entry until it is removed."""
    configure("warning")  # stdout is the commands' output; logs (warnings and worse) go to stderr


@contextmanager
def _accounts(settings: Settings, *, create: bool) -> Iterator[tuple[KeyStore, BudgetLedger]]:
    """The key store and budget ledger ``RELAY_BACKEND`` names; a local one only if its database exists,
    unless ``create``."""
    from handlers.app.wiring import build_accounts

    if settings.backend != "aws" and not create and not (settings.data_dir / "relay.sqlite3").exists():
        raise click.ClickException(f"no relay data at {settings.data_dir} (RELAY_DATA_DIR); "
                                   "`seedance-relay tenants budget` or `serve` makes it")
    keys, ledger, _, closers = build_accounts(settings)
    try:
        yield keys, ledger
    finally:
        for close in closers:
            close()


def _tenant(tenant: str) -> str:
    try:
        return check_tenant(tenant, "TENANT")
    except ConfigurationError as exc:
        raise click.BadParameter(exc.message.removeprefix("TENANT: "), param_hint="TENANT") from exc


def _budget(tenant: str, value: str) -> Budget | None:
    """``value`` (``CREDITS/day``, ``CREDITS/month`` or ``none``) as a budget; a usage error naming it otherwise."""
    if value.strip().lower() == NONE:
        return None
    if "/" not in value or any(mark in value for mark in ",="):
        raise click.BadParameter(f"{value!r} is not one budget; {_ACCEPTED}", param_hint="BUDGET")
    entry = f"{tenant}={value}"
    try:
        return parse_budgets(entry, "BUDGET")[tenant]
    except ConfigurationError as exc:  # the reason, without the entry we made or the advice for RELAY_BUDGETS
        reason = exc.message.removeprefix(f"BUDGET: entry {entry.strip()!r} ").partition(";")[0]
        raise click.BadParameter(f"{value!r} {reason}; {_ACCEPTED}", param_hint="BUDGET") from exc


@tenants.command("budget", short_help="Set (or remove) TENANT's budget at run time.",
                 context_settings={"ignore_unknown_options": True})  # so that -5/day is a BUDGET, said negative
@click.argument("tenant")
@click.argument("value", metavar="BUDGET")
@_as_json
def budget(tenant: str, value: str, as_json: bool) -> None:
    """Set TENANT's credit budget to BUDGET per UTC day or month (`5000/day`, `100000/month`), or remove
    the one set here with `none`. It takes effect at the next submit and overrides TENANT's
    RELAY_BUDGETS entry until it is removed. Prints the tenant's budget and usage, as `list` does."""
    tenant = _tenant(tenant)
    wanted = _budget(tenant, value)
    settings = Settings.from_env()
    with _accounts(settings, create=True) as (keys, ledger):
        ledger.set_budget(tenant, wanted)
        if wanted is not None and tenant not in _key_tenants(settings, keys):
            click.echo(f"warning: no key belongs to tenant {tenant!r} yet (RELAY_API_KEYS, RELAY_ADMIN_KEYS or "
                       "`seedance-relay keys create`); check its name", err=True)
        lines, set_here = _report(settings, ledger, [tenant], time.time())
    [line] = lines
    if as_json:
        click.echo(json.dumps(_record(line, set_here)))
        return
    click.echo(f"tenant {tenant}: {_said(line, set_here)}")


@tenants.command("list", short_help="Every tenant known: budget, period, held, spent, remaining.")
@_as_json
def list_command(as_json: bool) -> None:
    """One line per tenant known (with a budget in RELAY_BUDGETS or set here, with holds this day
    or month, or with a key), by name: its budget and what set it (config: RELAY_BUDGETS; run_time:
    `tenants budget`), its current UTC period (its budget's, else the month), the credits held by
    running jobs and spent by ended ones in it, what remains, the jobs held for, and when the
    period resets (UTC)."""
    settings = Settings.from_env()
    with _accounts(settings, create=False) as (keys, ledger):
        now = time.time()
        lines, set_here = _report(settings, ledger, None, now)
        unlisted = _key_tenants(settings, keys) - {line.tenant for line in lines}
        extra = usage_report(ledger, settings.budgets, unlisted, now) if unlisted else []
    every = sorted([*lines, *extra], key=lambda line: line.tenant)
    if as_json:
        for line in every:
            click.echo(json.dumps(_record(line, set_here)))
        return
    _table([_COLUMNS, *(_row(line, set_here) for line in every)])


def _key_tenants(settings: Settings, store: KeyStore) -> set[str]:
    """The tenants of the keys in RELAY_API_KEYS and RELAY_ADMIN_KEYS and of the keys made at run time."""
    return settings.configured_tenants() | {key.tenant for key in list_keys(store)}


def _report(settings: Settings, ledger: BudgetLedger, names: Sequence[str] | None,
            now: float) -> tuple[list[TenantUsage], Mapping[str, Budget]]:
    """The usage lines of ``names`` (``None``: every tenant with a budget or holds), and the budgets set here."""
    return usage_report(ledger, settings.budgets, names, now), ledger.budgets()


def _source(line: TenantUsage, set_here: Mapping[str, Budget]) -> str | None:
    return None if line.budget is None else RUN_TIME if line.tenant in set_here else CONFIG


def _record(line: TenantUsage, set_here: Mapping[str, Budget]) -> dict[str, Any]:
    """``GET /v1/usage``'s line, its budget with ``set_by``: ``config`` or ``run_time``."""
    record = line.as_dict()
    if record["budget"] is not None:
        record["budget"]["set_by"] = _source(line, set_here)
    return record


def _said(line: TenantUsage, set_here: Mapping[str, Budget]) -> str:
    if line.budget is None:
        return f"no budget; {_credits(line.held)} held and {_credits(line.spent)} spent in {line.period}"
    where = "set at run time" if _source(line, set_here) == RUN_TIME else "from RELAY_BUDGETS"
    return (f"budget {_amount(line.budget)} ({where}); {_credits(line.held)} held, {_credits(line.spent)} spent "
            f"and {_credits(line.remaining)} remaining in {line.period}, which resets at {_when(line.resets_at)} UTC")


def _credits(value: float | None) -> str:
    """Credits to the ledger's millionth, without exponent or trailing zeros (``1500000``, ``12.25``); ``-``."""
    return "-" if value is None else f"{value:.6f}".rstrip("0").rstrip(".")


def _amount(budget: Budget | None) -> str:
    return "-" if budget is None else f"{_credits(budget.credits)}/{budget.per.value}"


def _when(value: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))


def _row(line: TenantUsage, set_here: Mapping[str, Budget]) -> tuple[str, ...]:
    return (line.tenant, _amount(line.budget), _source(line, set_here) or "-", line.period, _credits(line.held),
            _credits(line.spent), _credits(line.remaining), str(line.jobs), _when(line.resets_at))


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
