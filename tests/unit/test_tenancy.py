"""Tenants, roles, configured keys and budgets as settings read them: every bad entry is one line naming it."""

from __future__ import annotations

import pytest

from handlers.app.settings import Settings
from handlers.base.errors import ConfigurationError
from handlers.domain.budgets import Budget, Per, parse_budgets, period_of, period_resets_at
from handlers.domain.tenancy import DEFAULT_TENANT, Principal, Role, key_digest, key_id_of, parse_keys

DAY_2026_12_03 = 1_796_306_400.0  # 2026-12-03T14:00:00Z


def test_a_bare_key_is_the_default_tenants_and_a_prefixed_one_its_tenants() -> None:
    keys = parse_keys("plain-key, acme:key-a", Role.SUBMITTER, "RELAY_API_KEYS")
    assert [(k.tenant, k.role, k.digest) for k in keys] == [
        (DEFAULT_TENANT, Role.SUBMITTER, key_digest("plain-key")), ("acme", Role.SUBMITTER, key_digest("key-a"))]
    assert keys[1].principal() == Principal("acme", Role.SUBMITTER, key_id_of(key_digest("key-a")))


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("RELAY_API_KEYS", "good-key,Bad Tenant:k", "RELAY_API_KEYS: entry 2 (Bad Tenant:…): tenant 'Bad Tenant' must be"),
    ("RELAY_ADMIN_KEYS", ":secret-1", "RELAY_ADMIN_KEYS: entry 1 (:…) has an empty tenant"),
    ("RELAY_ADMIN_KEYS", "acme:", "RELAY_ADMIN_KEYS: entry 1 (acme:…) needs a key of 1-256 printable"),
    ("RELAY_API_KEYS", "k-1,k-1", "RELAY_API_KEYS: the same key is listed twice"),
    ("RELAY_BUDGETS", "acme=-5/day", "RELAY_BUDGETS: entry 'acme=-5/day' needs a finite number of credits"),
    ("RELAY_BUDGETS", "acme=lots/day", "RELAY_BUDGETS: entry 'acme=lots/day' has 'lots' credits; use a number"),
    ("RELAY_BUDGETS", "acme=5/week", "RELAY_BUDGETS: entry 'acme=5/week' has period 'week'; use day or month"),
    ("RELAY_BUDGETS", "acme=5", "RELAY_BUDGETS: entry 'acme=5' is not TENANT=CREDITS/day"),
    ("RELAY_BUDGETS", "acme=5/day,acme=6/day", "RELAY_BUDGETS: tenant 'acme' has two entries"),
    ("RELAY_MAX_IN_FLIGHT", "0", "RELAY_MAX_IN_FLIGHT=0 is out of range: expected 1 to 1000"),
    ("RELAY_TENANT_MAX_IN_FLIGHT", "1001", "RELAY_TENANT_MAX_IN_FLIGHT=1001 is out of range: expected 1 to 1000"),
    ("RELAY_SUBSCRIBERS", "feed:*@Not A Tenant", "RELAY_SUBSCRIBERS: entry 'feed:*@Not A Tenant': tenant"),
])
def test_a_bad_entry_stops_with_one_line_naming_it(variable: str, value: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env({variable: value})
    assert str(refused.value).startswith(says) and "\n" not in str(refused.value)


def test_an_error_never_shows_any_of_a_key() -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env({"RELAY_API_KEYS": "Acme:sk-very-secret-key"})
    assert "sk-" not in str(refused.value) and "secret" not in str(refused.value)


def test_a_tenant_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        parse_keys("acme\n:key-a", Role.SUBMITTER, "RELAY_API_KEYS")


def test_budgets_and_subscriber_tenants_are_read() -> None:
    settings = Settings.from_env({"RELAY_BUDGETS": "acme=5000/day, beta=1e5/month",
                                  "RELAY_SUBSCRIBERS": "feed:completed@acme+beta,all:*"})
    assert settings.budgets == {"acme": Budget(5000, Per.DAY), "beta": Budget(100_000, Per.MONTH)}
    assert settings.subscribers == (("feed", ("completed", "tenant:acme", "tenant:beta")), ("all", ("*",)))


def test_periods_are_utc_days_and_months_and_say_when_they_reset() -> None:
    assert period_of(DAY_2026_12_03, Per.DAY) == "day:2026-12-03"
    assert period_of(DAY_2026_12_03, Per.MONTH) == "month:2026-12"
    assert period_resets_at("day:2026-12-03") == DAY_2026_12_03 + 10 * 3600
    assert period_resets_at("month:2026-12") == 1_798_761_600.0  # 2027-01-01T00:00:00Z


def test_a_principal_sees_its_own_tenant_and_an_admin_every_tenant() -> None:
    reader, admin = Principal("acme", Role.READER, "key_1"), Principal("ops", Role.ADMIN, "key_2")
    assert reader.sees("acme") and not reader.sees("beta") and not reader.role.submits
    assert admin.sees("beta") and admin.role.submits


def test_parse_budgets_of_nothing_is_no_budgets() -> None:
    assert parse_budgets(" , ") == {}
