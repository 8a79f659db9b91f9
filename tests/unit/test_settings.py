"""Settings are read once from the environment; bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.errors import ConfigurationError
from handlers.sandbox.settings import SWITCHES, SandboxSettings
from handlers.settings import Settings, parse_subscribers


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings.backend == "local" and settings.uses_sandbox and settings.data_dir == Path(".relay")
    assert settings.reconcile_every == 300 and settings.subscribers == (("default", ("*",)),)


def test_environment_values_are_parsed() -> None:
    settings = Settings.from_env({"EVOLINK_API_KEY": "sk-evo-1", "RELAY_API_KEYS": "a, b,,",
                                  "RELAY_RECONCILE_EVERY": "12.5", "RELAY_PORT": "9000",
                                  "RELAY_PUBLIC_URL": "https://relay.example/"})
    assert not settings.uses_sandbox and settings.api_keys == ("a", "b")
    assert settings.reconcile_every == 12.5 and settings.port == 9000
    assert settings.public_url == "https://relay.example"


def test_explicit_arguments_win_over_the_environment() -> None:
    assert Settings.from_env({"RELAY_PORT": "9000"}, port=7000).port == 7000


@pytest.mark.parametrize(("env", "name"), [({"RELAY_PORT": "eighty"}, "RELAY_PORT"),
                                           ({"RELAY_BACKEND": "gcp"}, "RELAY_BACKEND"),
                                           ({"RELAY_SUBSCRIBERS": "bad name:*"}, "RELAY_SUBSCRIBERS")])
def test_bad_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env(env)


def test_secrets_never_appear_in_the_repr() -> None:
    settings = Settings.from_env({"EVOLINK_API_KEY": "sk-evo-topsecret", "RELAY_CALLBACK_SECRET": "k1:" + "z" * 32,
                                  "RELAY_API_KEYS": "api-topsecret"})
    assert "topsecret" not in repr(settings) and "zzzz" not in repr(settings)


def test_subscriber_filters_parse() -> None:
    assert parse_subscribers("archive:*,notify:completed+failed") == (
        ("archive", ("*",)), ("notify", ("completed", "failed")))


def test_every_sandbox_switch_reads_its_environment_variable() -> None:
    env = {"SANDBOX_SPEED": "5", "SANDBOX_CALLBACK_DROP": "0.5", "SANDBOX_CALLBACK_DUPLICATE": "2",
           "SANDBOX_CALLBACK_DELAY": "1.5", "SANDBOX_FAIL_RATE": "0.25", "SANDBOX_FAIL_CODE": "service_error",
           "SANDBOX_CREATE_ERROR_RATE": "0.1", "SANDBOX_DOWNLOAD_DELAY": "2", "SANDBOX_URL_TTL": "60"}
    assert set(env) == {variable for variable, _ in SWITCHES.values()}
    settings = SandboxSettings.from_env(env)
    assert (settings.speed, settings.callback_drop, settings.callback_duplicate, settings.callback_delay,
            settings.fail_rate, settings.create_error_rate, settings.download_delay, settings.url_ttl) == (
        5.0, 0.5, 2, 1.5, 0.25, 0.1, 2.0, 60.0)


@pytest.mark.parametrize(("env", "name"), [({"SANDBOX_SPEED": "0"}, "SANDBOX_SPEED"),
                                           ({"SANDBOX_FAIL_RATE": "2"}, "SANDBOX_FAIL_RATE"),
                                           ({"SANDBOX_CALLBACK_DUPLICATE": "-1"}, "SANDBOX_CALLBACK_DUPLICATE")])
def test_bad_sandbox_switches_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        SandboxSettings.from_env(env)
