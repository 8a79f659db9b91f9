"""The sandbox's account and plan limits as settings: unlimited by default, bad values named in one line."""

from __future__ import annotations

import pytest

from handlers.base.errors import ConfigurationError
from handlers.domain.pricing import DEFAULT_PRICE_TABLE
from handlers.sandbox.settings import SWITCHES, SandboxSettings


def test_quota_and_concurrency_are_unlimited_by_default() -> None:
    """Without SANDBOX_QUOTA and SANDBOX_MAX_CONCURRENCY nothing is refused; the default table bills."""
    settings = SandboxSettings.from_env({})
    assert (settings.quota, settings.max_concurrency, settings.prices) == (None, None, DEFAULT_PRICE_TABLE)


def test_quota_and_concurrency_are_read_from_their_variables_and_offered_as_flags() -> None:
    """SANDBOX_QUOTA is a number of credits, SANDBOX_MAX_CONCURRENCY a number of tasks; both are CLI flags."""
    settings = SandboxSettings.from_env({"SANDBOX_QUOTA": "250.5", "SANDBOX_MAX_CONCURRENCY": "3"})
    assert (settings.quota, settings.max_concurrency) == (250.5, 3)
    assert SWITCHES["quota"][0] == "SANDBOX_QUOTA" and SWITCHES["max_concurrency"][0] == "SANDBOX_MAX_CONCURRENCY"


@pytest.mark.parametrize(("env", "says"), [
    ({"SANDBOX_QUOTA": "-1"}, "sandbox quota (SANDBOX_QUOTA) must be 0 or more credits"),
    ({"SANDBOX_QUOTA": "lots"}, "SANDBOX_QUOTA='lots' is not valid: expected a number"),
    ({"SANDBOX_MAX_CONCURRENCY": "0"}, "sandbox max_concurrency (SANDBOX_MAX_CONCURRENCY) must be 1 or more tasks"),
    ({"SANDBOX_MAX_CONCURRENCY": "2.5"}, "SANDBOX_MAX_CONCURRENCY='2.5' is not valid: expected a whole number"),
])
def test_a_bad_limit_is_one_line_naming_the_variable(env: dict[str, str], says: str) -> None:
    """Negative credits, fewer than one task or a value that is no number: ConfigurationError naming it."""
    with pytest.raises(ConfigurationError) as info:
        SandboxSettings.from_env(env)
    assert info.value.message.startswith(says)
