"""Settings are read once from the environment; bad values name the variable."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

import handlers
from handlers.adapters.aws.names import AwsNames
from handlers.app.settings import (
    LOG_FORMATS,
    VARIABLES,
    Settings,
    configuration_table,
    knobs,
    known_variables,
    parse_subscribers,
    unknown_variables,
)
from handlers.app.wiring import aws_names
from handlers.base.errors import ConfigurationError
from handlers.base.logs import configure
from handlers.sandbox.settings import SWITCHES, SandboxSettings


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
           "SANDBOX_CREATE_ERROR_RATE": "0.1", "SANDBOX_DOWNLOAD_DELAY": "2", "SANDBOX_URL_TTL": "60",
           "SANDBOX_QUOTA": "500", "SANDBOX_MAX_CONCURRENCY": "3", "SANDBOX_WRONG_OUTPUT_RATE": "0.5",
           "SANDBOX_WRONG_OUTPUT": "audio"}
    assert set(env) == {variable for variable, _ in SWITCHES.values()}
    settings = SandboxSettings.from_env(env)
    assert (settings.speed, settings.callback_drop, settings.callback_duplicate, settings.callback_delay,
            settings.fail_rate, settings.create_error_rate, settings.download_delay, settings.url_ttl,
            settings.quota, settings.max_concurrency, settings.wrong_output_rate, settings.wrong_output) == (
        5.0, 0.5, 2, 1.5, 0.25, 0.1, 2.0, 60.0, 500.0, 3, 0.5, "audio")


@pytest.mark.parametrize(("env", "name"), [({"SANDBOX_SPEED": "0"}, "SANDBOX_SPEED"),
                                           ({"SANDBOX_FAIL_RATE": "2"}, "SANDBOX_FAIL_RATE"),
                                           ({"SANDBOX_CALLBACK_DUPLICATE": "-1"}, "SANDBOX_CALLBACK_DUPLICATE"),
                                           ({"SANDBOX_WRONG_OUTPUT_RATE": "1.5"}, "SANDBOX_WRONG_OUTPUT_RATE"),
                                           ({"SANDBOX_WRONG_OUTPUT": "colour"}, "SANDBOX_WRONG_OUTPUT")])
def test_bad_sandbox_switches_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        SandboxSettings.from_env(env)


@pytest.mark.parametrize(("env", "message"), [
    ({"RELAY_LOG_FORMAT": "xml"}, "RELAY_LOG_FORMAT='xml' is not valid: expected one of auto, json, console"),
    ({"RELAY_LOG_LEVEL": "loud"}, "RELAY_LOG_LEVEL='loud' is not valid: expected one of debug, info, warning"),
    ({"RELAY_BACKEND": "foo"}, "RELAY_BACKEND='foo' is not valid: expected one of local, aws"),
    ({"RELAY_PORT": "abc"}, "RELAY_PORT='abc' is not valid: expected a whole number"),
    ({"RELAY_PORT": "70000"}, "RELAY_PORT=70000 is out of range: expected 1 to 65535"),
    ({"RELAY_RECONCILE_EVERY": "soon"}, "RELAY_RECONCILE_EVERY='soon' is not valid: expected a number"),
    ({"RELAY_HEADER_TIMEOUT": "0"}, "RELAY_HEADER_TIMEOUT=0 is out of range: expected a number of seconds above 0"),
    ({"RELAY_MAX_CONNECTIONS": "0"}, "RELAY_MAX_CONNECTIONS=0 is out of range: expected at least 1"),
])
def test_bad_values_say_what_is_accepted(env: dict[str, str], message: str) -> None:
    """Each refusal names the variable, the value and what would be accepted."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    assert caught.value.message.startswith(message)


def test_log_formats_are_the_ones_the_logger_knows() -> None:
    """Every accepted RELAY_LOG_FORMAT configures the logger; the settings list is the logger's."""
    for fmt in LOG_FORMATS:
        assert Settings.from_env({"RELAY_LOG_FORMAT": fmt.upper()}).log_format == fmt
        configure("info", fmt)
    with pytest.raises(ValueError, match="auto, json, console"):
        configure("info", "xml")
    configure("info", "auto")


def test_connection_limits_are_settings() -> None:
    """RELAY_MAX_HEADER_BYTES … RELAY_MAX_CONNECTIONS are read, with their defaults otherwise."""
    env = {"RELAY_MAX_HEADER_BYTES": "4096", "RELAY_MAX_HEADERS": "20", "RELAY_HEADER_TIMEOUT": "2.5",
           "RELAY_BODY_TIMEOUT": "30", "RELAY_MAX_CONNECTIONS": "64"}
    settings = Settings.from_env(env)
    assert (settings.max_header_bytes, settings.max_headers, settings.header_timeout, settings.body_timeout,
            settings.max_connections) == (4096, 20, 2.5, 30.0, 64)
    default = Settings.from_env({})
    assert (default.max_header_bytes, default.max_headers, default.header_timeout, default.body_timeout,
            default.max_connections) == (32768, 100, 10.0, 300.0, 512)


def test_a_mistyped_variable_gets_a_did_you_mean() -> None:
    """An unknown RELAY_* name is reported once, with the closest known name when there is one."""
    env = {"RELAY_RECONCILE_EVRY": "5", "RELAY_SPEEDY_MODE": "on", "RELAY_PORT": "9000", "HOME": "/root"}
    assert unknown_variables(env) == ["RELAY_RECONCILE_EVRY is not a setting; did you mean RELAY_RECONCILE_EVERY?",
                                      "RELAY_SPEEDY_MODE is not a setting (it is ignored)"]


def test_variables_read_outside_the_settings_object_are_known() -> None:
    """Client, AWS-name, webhook and SSM-parameter variables are settings too, never flagged."""
    env = {name: "x" for name in ("RELAY_URL", "RELAY_API_KEY", "RELAY_TABLE", "RELAY_KMS_KEY_ID", "RELAY_WEBHOOKS",
                                  "RELAY_WEBHOOK_SECRET_CRM", "RELAY_WEBHOOK_SECRET_CRM_PARAM",
                                  "RELAY_CALLBACK_SECRET_PARAM", "RELAY_API_KEYS_PARAM", "RELAY_WEBHOOK_TARGET")}
    assert unknown_variables(env) == []


def test_every_relay_variable_the_code_names_is_known() -> None:
    """Every RELAY_* name written anywhere in handlers/ is a known setting (the list cannot drift)."""
    root = Path(handlers.__file__).parent
    named = {match for path in root.rglob("*.py")
             for match in re.findall(r"\bRELAY_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())}
    assert named, "no RELAY_ names found: the scan is broken"
    assert unknown_variables(dict.fromkeys(named, "x")) == []
    assert set(VARIABLES) == {f.name for f in fields(Settings)}
    assert {k.env for _, k in knobs() if not k.pattern} <= known_variables()


def test_every_setting_has_a_variable_and_help() -> None:
    """Each Settings field is declared with its environment variable and a help text; no field is unlisted."""
    declared = list(knobs())
    assert [f.name for f, _ in declared] == [f.name for f in fields(Settings)]
    for f, k in declared:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*(<NAME>[A-Z0-9_]*)?", k.env), f.name
        assert k.help.strip() and "|" not in k.help, f.name
    assert len({k.env for _, k in declared}) == len(declared), "two settings share a variable"


def test_the_configuration_table_lists_every_variable_once() -> None:
    """The README table has one row per setting, in the order of Settings, naming its variable and default."""
    lines = configuration_table().splitlines()
    assert lines[:2] == ["| variable | default | meaning |", "|---|---|---|"]
    rows = [line.split(" | ") for line in lines[2:]]
    assert [row[0].removeprefix("| ") for row in rows] == [f"`{k.env}`" for _, k in knobs()]
    assert all(line.count(" | ") == 2 and line.endswith(" |") for line in lines[2:])
    assert "| `RELAY_PORT` | `8000` | bind port |" in lines
    assert "| `RELAY_EXPIRE_AFTER` | `172800` | seconds after which an unfinished job expires |" in lines
    assert any(line.startswith("| `RELAY_WEBHOOK_SECRET_<NAME>` | — |") for line in lines)


def test_a_mistyped_variable_is_matched_against_the_one_list() -> None:
    """The warning knows settings that used to live outside Settings (webhooks, AWS names, the CLI client)."""
    env = {"RELAY_WEBHOOK_TIMEOT": "5", "RELAY_BUCKT": "b", "RELAY_URLS": "x", "RELAY_WEBHOOK_SECRET_ANY": "s"}
    assert unknown_variables(env) == ["RELAY_BUCKT is not a setting; did you mean RELAY_BUCKET?",
                                      "RELAY_URLS is not a setting; did you mean RELAY_URL?",
                                      "RELAY_WEBHOOK_TIMEOT is not a setting; did you mean RELAY_WEBHOOK_TIMEOUT?"]


def test_aws_names_come_from_settings_with_the_adapters_defaults() -> None:
    """RELAY_TABLE … AWS_REGION are settings; unset, they give the AWS adapters' own default names."""
    assert aws_names(Settings.from_env({})) == AwsNames()
    env = {"RELAY_TABLE": "t", "RELAY_BUCKET": "b", "RELAY_INGEST_QUEUE": "i", "RELAY_REQUESTS_QUEUE": "r",
           "RELAY_TOPIC": "arn:aws:sns:eu-west-1:1:t", "RELAY_SUBSCRIBER_QUEUE_PREFIX": "s-",
           "RELAY_KMS_KEY_ID": "k", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert aws_names(Settings.from_env(env)) == AwsNames.from_env(env)
    assert Settings.from_env({**env, "AWS_REGION": "eu-north-1"}).aws_region == "eu-north-1"


def test_client_and_webhook_settings_keep_the_precedence() -> None:
    """RELAY_URL, RELAY_WEBHOOK_TIMEOUT and friends: explicit argument > environment > default."""
    env = {"RELAY_URL": "http://relay.example:9000/", "RELAY_WEBHOOK_TIMEOUT": "3"}
    assert Settings.from_env({}).relay_url == "http://127.0.0.1:8000"
    assert Settings.from_env(env).relay_url == "http://relay.example:9000"
    assert Settings.from_env(env, relay_url="http://other.example").relay_url == "http://other.example"
    assert (Settings.from_env(env).webhook_timeout, Settings.from_env({}).webhook_timeout) == (3.0, 15.0)
    with pytest.raises(ConfigurationError, match=r"^RELAY_WEBHOOK_MAX_BACKOFF=0 is out of range"):
        Settings.from_env({"RELAY_WEBHOOK_MAX_BACKOFF": "0"})


def test_webhook_secrets_are_read_once_for_each_listed_webhook() -> None:
    """RELAY_WEBHOOK_SECRET_<NAME>[_PARAM] become mappings by webhook name; other names are not read."""
    env = {"RELAY_WEBHOOKS": "crm=https://c.example,my-hook=https://m.example",
           "RELAY_WEBHOOK_SECRET_CRM": "whsec_topsecret", "RELAY_WEBHOOK_SECRET_MY_HOOK": " ",
           "RELAY_WEBHOOK_SECRET_MY_HOOK_PARAM": "/p/my-hook", "RELAY_WEBHOOK_SECRET_GONE": "whsec_old"}
    settings = Settings.from_env(env)
    assert settings.webhooks == (("crm", "https://c.example"), ("my-hook", "https://m.example"))
    assert settings.webhook_secrets == {"crm": "whsec_topsecret"}
    assert settings.webhook_secret_params == {"my-hook": "/p/my-hook"}
    assert "topsecret" not in repr(settings)


def test_secret_parameters_are_settings() -> None:
    """``NAME_PARAM`` names an SSM parameter; it is pending only while ``NAME`` itself is unset."""
    assert not Settings.from_env({}).has_secret_parameters
    assert Settings.from_env({"RELAY_API_KEYS_PARAM": "/p/keys"}).has_secret_parameters
    assert not Settings.from_env({"RELAY_API_KEYS_PARAM": "/p/keys", "RELAY_API_KEYS": "k"}).has_secret_parameters


def test_sandbox_settings_are_declared_the_same_way() -> None:
    """Each sandbox switch has its SANDBOX_* variable and help; key, folder and seed are read too."""
    declared = [f for f in fields(SandboxSettings) if "knob" in f.metadata]
    assert {f.name for f in declared} == {*SWITCHES, "api_key", "data_dir", "seed"}
    assert all(f.metadata["knob"].env.startswith("SANDBOX_") and f.metadata["knob"].help for f in declared)
    settings = SandboxSettings.from_env({"SANDBOX_API_KEY": "sk-sandbox-secret", "SANDBOX_DATA_DIR": "/tmp/sbx",
                                         "SANDBOX_SEED": "7"})
    assert (settings.api_key, settings.data_dir, settings.seed) == ("sk-sandbox-secret", Path("/tmp/sbx"), 7)
    assert "sk-sandbox-secret" not in repr(settings)
    explicit = SandboxSettings.from_env({"SANDBOX_DATA_DIR": "/tmp/sbx"}, data_dir=Path("/other"))
    assert explicit.data_dir == Path("/other")
