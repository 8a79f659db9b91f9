"""``seedance-relay tenants`` as a real process on the local backend (and on DynamoDB under moto): a budget
set at run time overrides RELAY_BUDGETS until removed, ``list`` shows every known tenant's usage in its
current UTC period, and a mistake is one clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.adapters.aws import AwsNames, DynamoBudgetLedger, aws_clients
from handlers.adapters.aws.bootstrap import ensure_table
from handlers.adapters.local import SqliteBudgetLedger, SqliteKeyStore
from handlers.domain.budgets import Budget, Per, period_of, period_resets_at
from handlers.domain.jobs import rfc3339
from handlers.usecases.keys import create_key

pytestmark = pytest.mark.e2e

# The relay's own command line, with ``tenants`` added if it is not registered yet.
MAIN = ("from handlers.cli import main\nfrom handlers.cli.tenants import tenants\n"
        "if 'tenants' not in main.commands:\n    main.add_command(tenants)\nmain(prog_name='seedance-relay')")


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "EVOLINK_", "SANDBOX_", "AWS_"))}
    return subprocess.run([sys.executable, "-c", MAIN, "tenants", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def ok(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = run(*args, env=env)
    assert done.returncode == 0, done.stderr
    return done


def lines(done: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in done.stdout.splitlines()]


def current(per: Per) -> tuple[str, str]:
    """The current UTC period of ``per`` and when it resets, as the command shows them."""
    period = period_of(time.time(), per)
    return period, rfc3339(period_resets_at(period))


@pytest.fixture(autouse=True)
def _clear_of_midnight() -> None:
    """Start at least a minute before a UTC day (and month) ends, so the test and the command see one period."""
    now = time.time()
    left = period_resets_at(period_of(now, Per.DAY)) - now
    if left < 60:
        time.sleep(left + 1)


@pytest.fixture
def local(tmp_path: Path) -> dict[str, str]:
    return {"RELAY_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteBudgetLedger]:
    """The ledger the commands read and write (the relay's database under RELAY_DATA_DIR)."""
    (tmp_path / "data").mkdir()
    store = SqliteBudgetLedger(tmp_path / "data" / "relay.sqlite3")
    yield store
    store.close()


def test_budget_sets_the_tenants_run_time_budget(local: dict[str, str], ledger: SqliteBudgetLedger) -> None:
    done = ok("budget", "acme", "8000/day", env=local)
    period, _ = current(Per.DAY)
    assert ledger.budgets() == {"acme": Budget(8000.0, Per.DAY)}
    assert done.stdout.startswith(f"tenant acme: budget 8000/day (set at run time); 0 held, 0 spent and 8000 "
                                  f"remaining in {period}, which resets at "), done.stdout


def test_a_run_time_budget_overrides_relay_budgets_until_it_is_removed(local: dict[str, str],
                                                                       ledger: SqliteBudgetLedger) -> None:
    env = {**local, "RELAY_BUDGETS": "acme=5000/day", "RELAY_API_KEYS": "acme:ak_1"}
    set_here = json.loads(ok("budget", "acme", "100/month", "--json", env=env).stdout)
    removed = json.loads(ok("budget", "acme", "none", "--json", env=env).stdout)
    assert (set_here["budget"], set_here["period"]) == ({"credits": 100.0, "per": "month", "set_by": "run_time"},
                                                        current(Per.MONTH)[0])
    assert (removed["budget"], removed["period"]) == ({"credits": 5000.0, "per": "day", "set_by": "config"},
                                                      current(Per.DAY)[0])
    assert ledger.budgets() == {}


def test_list_shows_each_tenants_held_spent_remaining_jobs_and_reset(local: dict[str, str],
                                                                     ledger: SqliteBudgetLedger) -> None:
    day, day_resets = current(Per.DAY)
    month, month_resets = current(Per.MONTH)
    ledger.set_budget("acme", Budget(100.0, Per.DAY))
    ledger.hold("acme", day, "job_a", 30.0, limit=100.0)
    ledger.hold("acme", day, "job_b", 20.0, limit=100.0)
    ledger.settle("acme", day, "job_a", 12.5)
    ledger.hold("beta", month, "job_c", 7.25, limit=None)  # no budget: its holds are kept by the month
    assert lines(ok("list", "--json", env=local)) == [
        {"tenant": "acme", "period": day, "budget": {"credits": 100.0, "per": "day", "set_by": "run_time"},
         "held": 20.0, "spent": 12.5, "remaining": 67.5, "jobs": 2, "resets_at": day_resets},
        {"tenant": "beta", "period": month, "budget": None, "held": 7.25, "spent": 0.0, "remaining": None,
         "jobs": 1, "resets_at": month_resets}]


def test_list_names_the_tenants_of_keys_and_of_relay_budgets(local: dict[str, str], tmp_path: Path,
                                                             ledger: SqliteBudgetLedger) -> None:
    """Tenants with a key (configured or made at run time) show even without a budget or holds."""
    keys = SqliteKeyStore(tmp_path / "data" / "relay.sqlite3")
    create_key(keys, "delta", "reader", time.time())
    keys.close()
    env = {**local, "RELAY_API_KEYS": "gamma:gk_1", "RELAY_ADMIN_KEYS": "ops:adm_1", "RELAY_BUDGETS": "zeta=9/day"}
    listed = lines(ok("list", "--json", env=env))
    assert [(line["tenant"], line["budget"], line["held"], line["jobs"]) for line in listed] == [
        ("delta", None, 0.0, 0), ("gamma", None, 0.0, 0), ("ops", None, 0.0, 0),
        ("zeta", {"credits": 9.0, "per": "day", "set_by": "config"}, 0.0, 0)]


def test_list_is_a_table_with_a_header_and_utc_times(local: dict[str, str], ledger: SqliteBudgetLedger) -> None:
    day, _ = current(Per.DAY)
    ledger.set_budget("acme", Budget(1_500_000.0, Per.DAY))
    ledger.hold("acme", day, "job_a", 0.5, limit=None)
    header, *rows = ok("list", env=local).stdout.splitlines()
    assert header.split() == ["TENANT", "BUDGET", "SET", "BY", "PERIOD", "HELD", "SPENT", "REMAINING", "JOBS",
                              "RESETS", "(UTC)"]
    resets = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(period_resets_at(day)))
    assert [row.split() for row in rows] == [
        ["acme", "1500000/day", "run_time", day, "0.5", "0", "1499999.5", "1", *resets.split()]]


def test_budget_warns_when_no_key_belongs_to_the_tenant(local: dict[str, str], ledger: SqliteBudgetLedger) -> None:
    typo = ok("budget", "acmee", "10/day", env={**local, "RELAY_API_KEYS": "acme:ak_1"})
    known = ok("budget", "acme", "10/day", env={**local, "RELAY_API_KEYS": "acme:ak_1"})
    assert typo.stderr.startswith("warning: no key belongs to tenant 'acmee' yet"), typo.stderr
    assert known.stderr == ""
    assert set(ledger.budgets()) == {"acme", "acmee"}


ACCEPTED = "use CREDITS/day or CREDITS/month (CREDITS a number, 0 or more), or none"


@pytest.mark.parametrize(("args", "code", "says"), [
    (("budget", "Acme Corp", "10/day"), 2, ("TENANT", "'Acme Corp' must be 1-63 of a-z 0-9 _ -")),
    (("budget", "acme", "5000/week"), 2, ("BUDGET", f"'5000/week' has period 'week'; {ACCEPTED}")),
    (("budget", "acme", "-5/day"), 2, ("BUDGET", f"'-5/day' needs a finite number of credits, 0 or more; {ACCEPTED}")),
    (("budget", "acme", "lots/day"), 2, ("BUDGET", f"'lots/day' has 'lots' credits; {ACCEPTED}")),
    (("budget", "acme", "5000"), 2, ("BUDGET", f"'5000' is not one budget; {ACCEPTED}")),
    (("budget", "acme", "5/day,beta=9/day"), 2, ("BUDGET", f"'5/day,beta=9/day' is not one budget; {ACCEPTED}")),
    (("budget", "acme"), 2, ("Missing argument 'BUDGET'",)),
    (("list",), 1, ("no relay data at", "RELAY_DATA_DIR")),
])
def test_a_mistake_is_one_clear_error_and_changes_nothing(local: dict[str, str], tmp_path: Path,
                                                          args: tuple[str, ...], code: int,
                                                          says: tuple[str, ...]) -> None:
    done = run(*args, env=local)
    assert "Traceback" not in done.stderr and done.returncode == code, done.stderr
    assert all(text in done.stderr for text in says), done.stderr
    assert len(done.stderr.strip().splitlines()) <= 4, done.stderr
    assert not (tmp_path / "data").exists()


def test_a_bad_relay_budgets_is_one_line(local: dict[str, str], ledger: SqliteBudgetLedger) -> None:
    done = run("list", env={**local, "RELAY_BUDGETS": "acme=5000/fortnight"})
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr == "error: RELAY_BUDGETS: entry 'acme=5000/fortnight' has period 'fortnight'; use day or month\n"


@pytest.mark.integration
def test_on_aws_budgets_are_in_the_job_table(moto_server: str, tmp_path: Path) -> None:
    """RELAY_BACKEND=aws: the same commands on the DynamoDB table RELAY_TABLE, with holds made there."""
    table = f"tenants-{uuid.uuid4().hex[:12]}"
    client = aws_clients(AwsNames(), endpoint_url=moto_server).dynamodb
    ensure_table(client, table)
    env = {"RELAY_BACKEND": "aws", "RELAY_TABLE": table, "AWS_ENDPOINT_URL": moto_server,
           "RELAY_DATA_DIR": str(tmp_path / "unused"), "RELAY_BUDGETS": "beta=50/month",
           **{k: v for k, v in os.environ.items() if k.startswith("AWS_") and k != "AWS_ENDPOINT_URL"}}
    stored = DynamoBudgetLedger(client, table)
    day, day_resets = current(Per.DAY)
    stored.hold("acme", day, "job_a", 40.0, limit=None)
    ok("budget", "acme", "250/day", env=env)
    listed = lines(ok("list", "--json", env=env))
    assert stored.budgets() == {"acme": Budget(250.0, Per.DAY)}
    assert listed == [
        {"tenant": "acme", "period": day, "budget": {"credits": 250.0, "per": "day", "set_by": "run_time"},
         "held": 40.0, "spent": 0.0, "remaining": 210.0, "jobs": 1, "resets_at": day_resets},
        {"tenant": "beta", "period": current(Per.MONTH)[0],
         "budget": {"credits": 50.0, "per": "month", "set_by": "config"}, "held": 0.0, "spent": 0.0,
         "remaining": 50.0, "jobs": 0, "resets_at": current(Per.MONTH)[1]}]
    assert not (tmp_path / "unused").exists()
