"""Settings: the one typed list of every knob, read once from the environment into an immutable object.

Each field of :class:`Settings` is declared with :func:`~handlers.app.knobs.knob`: its
environment variable, its default and its help text. ``Settings.from_env`` reads them all,
the unknown-``RELAY_*`` warning knows them all, and :func:`configuration_table` renders the
README's table from them. Precedence everywhere: explicit argument > environment > default.
Nothing below the entry points reads ``os.environ``; they build a :class:`Settings` and pass it down.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from dataclasses import Field, dataclass, fields, replace
from pathlib import Path
from typing import Any

from handlers.app.emf import DEFAULT_NAMESPACE, DEFAULT_SERVICE
from handlers.app.knobs import (
    Knob,
    Reader,
    bounded,
    choice,
    default_of,
    env_bool,
    env_float,
    env_int,
    env_list,
    knob,
    knob_of,
    number,
    path,
    positive,
    text,
    url,
    whole,
    words,
)
from handlers.base.errors import ConfigurationError
from handlers.base.logs import FORMATS
from handlers.domain.admission import IN_FLIGHT_LIMIT
from handlers.domain.budgets import Budget, parse_budgets
from handlers.domain.events import TENANT_FILTER
from handlers.domain.tenancy import Role, check_tenant, parse_keys

__all__ = [
    "DEFAULT_EVOLINK_URL",
    "DEFAULT_RELAY_URL",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "PARAM_SUFFIX",
    "SECRET_VARIABLE_PREFIX",
    "VARIABLES",
    "WEBHOOKS_VARIABLE",
    "Settings",
    "configuration_table",
    "env_bool",
    "env_float",
    "env_int",
    "env_list",
    "knobs",
    "known_variables",
    "parse_subscribers",
    "parse_webhooks",
    "secret_variable",
    "unknown_variables",
]

DEFAULT_EVOLINK_URL = "https://api.evolink.ai"
DEFAULT_RELAY_URL = "http://127.0.0.1:8000"
LOG_FORMATS = FORMATS
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
BACKENDS = ("local", "aws")
DEFAULT_DATA_DIR = Path(".relay")
WEBHOOKS_VARIABLE = "RELAY_WEBHOOKS"
SECRET_VARIABLE_PREFIX = "RELAY_WEBHOOK_SECRET_"  # noqa: S105 (a variable name)
PARAM_SUFFIX = "_PARAM"


def parse_subscribers(raw: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``name:filter`` pairs, comma-separated; a filter is ``*`` or event types joined by ``+``, and then
    optionally ``@`` and tenants joined by ``+``.

    ``archive:*,notify:completed+failed@acme`` gives subscriber ``archive`` every event and
    ``notify`` only the completions and failures of the tenant ``acme``'s jobs (as the filter
    item ``tenant:acme``).
    """
    parsed = []
    for entry in (e.strip() for e in raw.split(",") if e.strip()):
        name, _, spec = entry.partition(":")
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigurationError(f"RELAY_SUBSCRIBERS: bad subscriber name in {entry!r}")
        kinds, _, tenants = spec.partition("@")
        outcomes = tuple(o.strip() for o in (kinds or "*").split("+") if o.strip())
        chosen = tuple(TENANT_FILTER + check_tenant(t.strip(), f"RELAY_SUBSCRIBERS: entry {entry!r}")
                       for t in tenants.split("+") if t.strip())
        parsed.append((name, (*(outcomes or ("*",)), *chosen)))
    return tuple(parsed)


def parse_webhooks(raw: str) -> tuple[tuple[str, str], ...]:
    """``name=url`` pairs, comma-separated, in order; names unique."""
    pairs: list[tuple[str, str]] = []
    for entry in (part.strip() for part in raw.split(",") if part.strip()):
        name, equals, target = (piece.strip() for piece in entry.partition("="))
        if not equals or not target or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigurationError(f"{WEBHOOKS_VARIABLE}: expected name=url, got {entry!r}")
        if name in (seen for seen, _ in pairs):
            raise ConfigurationError(f"{WEBHOOKS_VARIABLE}: webhook {name!r} is listed twice")
        pairs.append((name, target))
    return tuple(pairs)


def secret_variable(name: str) -> str:
    """``RELAY_WEBHOOK_SECRET_<NAME>`` for webhook ``name`` (``my-hook`` → ``..._MY_HOOK``)."""
    return SECRET_VARIABLE_PREFIX + name.upper().replace("-", "_")


def _subscribers(env: Mapping[str, str], name: str, default: Any) -> Any:
    return parse_subscribers(env[name]) if (env.get(name) or "").strip() else default


def _webhooks(env: Mapping[str, str], name: str, default: Any) -> Any:
    return parse_webhooks(env.get(name) or "") or default


def _keys(role: Role) -> Reader:
    """Comma-separated ``TENANT:KEY`` or ``KEY`` entries, each checked (one line naming a bad entry)."""
    def read(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        entries = words(env, name, default)
        parse_keys(",".join(entries), role, name)
        return entries

    return read


def _budgets(env: Mapping[str, str], name: str, default: Any) -> Any:
    return parse_budgets(env.get(name) or "", name) or default


def _cap(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    """A cap from 1 to the most the slot pools take; unset means no cap."""
    if not (env.get(name) or "").strip():
        return default
    return int(bounded(1, IN_FLIGHT_LIMIT)(env, name, 1))


def _processes(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    """A number of processes from 0 to 64; unset gives the default (``None``: one per ingest worker)."""
    if not (env.get(name) or "").strip():
        return default
    return int(bounded(0, 64)(env, name, 0))


def _days(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    """A number of days above 0 and at most 36500, fractions allowed (`0.5` is twelve hours); unset gives
    the default."""
    if not (env.get(name) or "").strip():
        return default
    value = env_float(env, name, 0.0)
    if not 0 < value <= 36500:
        raise ConfigurationError(f"{name}={value:g} is out of range: expected a number of days above 0, "
                                 "at most 36500")
    return value


_AWS = "AWS resource"
_SSM = "Lambda: the SSM SecureString parameter that holds {0} (read at cold start; a set {0} wins)"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the relay needs to know about its environment, in the README's order."""

    evolink_api_key: str | None = knob("EVOLINK_API_KEY", None, "EvoLink key. Without it, the sandbox is the "
                                       "provider", text, secret=True)
    evolink_api_key_param: str | None = knob("EVOLINK_API_KEY_PARAM", None, _SSM.format("`EVOLINK_API_KEY`"), text)
    evolink_base_url: str = knob("EVOLINK_BASE_URL", DEFAULT_EVOLINK_URL, "EvoLink's base URL. With no key, a "
                                 "non-default URL names a sandbox already running (`seedance-relay sandbox`)", url)
    public_url: str | None = knob("RELAY_PUBLIC_URL", None, "base of callback URLs. Must be https when the provider "
                                  "is EvoLink", url, shown="`http://127.0.0.1:$RELAY_PORT`")
    callback_secrets: tuple[str, ...] = knob(
        "RELAY_CALLBACK_SECRET", (), "`kid:secret` pairs, comma-separated; the first signs, all verify (rotation)",
        words, shown="generated into `$RELAY_DATA_DIR/callback-secret`", secret=True)
    callback_secret_param: str | None = knob("RELAY_CALLBACK_SECRET_PARAM", None,
                                             _SSM.format("`RELAY_CALLBACK_SECRET`"), text)
    api_keys: tuple[str, ...] = knob("RELAY_API_KEYS", (), "submitter keys of the HTTP API: `TENANT:KEY` or `KEY` "
                                     "(tenant `default`), comma-separated", _keys(Role.SUBMITTER), shown="—",
                                     secret=True)
    api_keys_param: str | None = knob("RELAY_API_KEYS_PARAM", None, _SSM.format("`RELAY_API_KEYS`"), text)
    admin_keys: tuple[str, ...] = knob(
        "RELAY_ADMIN_KEYS", (), "admin keys (every tenant, key management, DLQ redrive): `TENANT:KEY` or `KEY` (tenant "
        "`default`), comma-separated; `RELAY_API_KEYS` takes the same entries for submitters", _keys(Role.ADMIN),
        shown="the generated key, when neither is set", secret=True)
    admin_keys_param: str | None = knob("RELAY_ADMIN_KEYS_PARAM", None, _SSM.format("`RELAY_ADMIN_KEYS`"), text)
    budgets: Mapping[str, Budget] = knob(
        "RELAY_BUDGETS", {}, "credit budgets per UTC period: `TENANT=CREDITS/day` or `/month`, comma-separated "
        "(`seedance-relay tenants budget` sets them at run time)", _budgets)
    price_table: Path | None = knob(  # noqa: RUF009 (knob() declares a field, as dataclasses.field does)
        "RELAY_PRICE_TABLE", None, "a JSON price table replacing the built-in one "
                                    "(see `docs/costs.md`)", path)
    max_in_flight: int | None = knob("RELAY_MAX_IN_FLIGHT", None, "tasks the relay holds at EvoLink at once (your "
                                     "plan's limit); more jobs wait as `queued`", _cap, shown="no cap")
    tenant_max_in_flight: int | None = knob("RELAY_TENANT_MAX_IN_FLIGHT", None, "tasks each tenant holds at EvoLink "
                                            "at once", _cap, shown="no cap")
    data_dir: Path = knob(  # noqa: RUF009 (knob() declares a field, as dataclasses.field does)
        "RELAY_DATA_DIR", DEFAULT_DATA_DIR, "SQLite database, blobs, sandbox state", path,
        shown="`./.relay`")
    backend: str = knob("RELAY_BACKEND", "local", "`local` or `aws`", choice(BACKENDS))
    aws_table: str = knob("RELAY_TABLE", "seedance-relay-jobs", f"{_AWS}: the DynamoDB table of jobs", text)
    aws_bucket: str = knob("RELAY_BUCKET", "seedance-relay-videos", f"{_AWS}: the S3 bucket of videos", text)
    aws_ingest_queue: str = knob("RELAY_INGEST_QUEUE", "seedance-relay-ingest",
                                 f"{_AWS}: the ingest queue, by name or URL", text)
    aws_requests_queue: str = knob("RELAY_REQUESTS_QUEUE", "seedance-relay-requests",
                                   f"{_AWS}: the queue of submitted requests, by name or URL", text)
    aws_topic: str = knob("RELAY_TOPIC", "seedance-relay-events", f"{_AWS}: the SNS topic of events, by name or ARN",
                          text)
    aws_subscriber_queue_prefix: str = knob(
        "RELAY_SUBSCRIBER_QUEUE_PREFIX", "seedance-relay-sub-",
        f"{_AWS}: each subscriber's queue is this prefix and its name (a URL prefix works too)", text)
    aws_kms_key_id: str | None = knob("RELAY_KMS_KEY_ID", None, "SSE-KMS for the bucket instead of AES256", text)
    aws_region: str = knob("AWS_REGION", "us-east-1", "the AWS region (`AWS_DEFAULT_REGION` is read when it is "
                           "unset)", text, also=("AWS_DEFAULT_REGION",))
    aws_endpoint_url: str | None = knob("AWS_ENDPOINT_URL", None, "an AWS-compatible endpoint (moto, LocalStack, "
                                        "MinIO for S3)", text)
    metrics_namespace: str = knob("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_NAMESPACE,
                                  "Lambda: the CloudWatch namespace of the relay's metrics", text)
    metrics_service: str = knob("POWERTOOLS_SERVICE_NAME", DEFAULT_SERVICE,
                                "Lambda: the `service` dimension of the relay's metrics", text)
    upload_url_ttl: float = knob("RELAY_UPLOAD_URL_TTL", 6 * 3600.0,
                                 "seconds an uploaded reference's URL stays valid", number)
    queue_visibility_timeout: float = knob("RELAY_QUEUE_VISIBILITY_TIMEOUT", 900.0,
                                           "seconds a received message stays hidden", number)
    queue_max_receives: int = knob("RELAY_QUEUE_MAX_RECEIVES", 8, "receives before a message is dead-lettered",
                                   whole)
    ingest_lease: float = knob("RELAY_INGEST_LEASE", 90.0, "seconds a worker's claim on a job's copy lasts "
                               "(renewed every third of it while the copy runs)", number)
    webhooks: tuple[tuple[str, str], ...] = knob(
        WEBHOOKS_VARIABLE, (), "outgoing webhooks: `name=https://…` pairs, comma-separated; each name is also "
        "a subscriber", _webhooks)
    webhook_secrets: Mapping[str, str] = knob(
        SECRET_VARIABLE_PREFIX + "<NAME>", {}, "each webhook's `whsec_` secrets, space-separated, newest first "
        "(`<NAME>` is the webhook's name in upper case, `-` as `_`)", secret=True)
    webhook_secret_params: Mapping[str, str] = knob(
        SECRET_VARIABLE_PREFIX + "<NAME>" + PARAM_SUFFIX, {},
        "Lambda: the SSM SecureString parameter that holds a webhook's secrets (read by its webhooks function; "
        f"a set `{SECRET_VARIABLE_PREFIX}<NAME>` wins)")
    webhook_target: str | None = knob("RELAY_WEBHOOK_TARGET", None,
                                      "Lambda: the webhook a webhooks function delivers to", text)
    webhook_timeout: float = knob("RELAY_WEBHOOK_TIMEOUT", 15.0, "seconds per webhook attempt", positive)
    webhook_max_backoff: float = knob("RELAY_WEBHOOK_MAX_BACKOFF", 3600.0,
                                      "the cap, in seconds, on the webhook retry schedule", positive)
    relay_url: str = knob("RELAY_URL", DEFAULT_RELAY_URL, "where `submit` and `jobs` find a running relay", url)
    relay_api_key: str | None = knob("RELAY_API_KEY", None, "the key `submit` and `jobs` send", text,
                                     shown="`$RELAY_DATA_DIR/api-key`", secret=True)
    host: str = knob("RELAY_HOST", "127.0.0.1", "bind address (loopback by default)", text)
    port: int = knob("RELAY_PORT", 8000, "bind port", bounded(1, 65535))
    reconcile_every: float = knob("RELAY_RECONCILE_EVERY", 300.0, "seconds between reconciler passes", number)
    reconcile_grace: float = knob("RELAY_RECONCILE_GRACE", 120.0,
                                  "seconds past `estimated_time` before the reconciler reads a task", number)
    expire_after: float = knob("RELAY_EXPIRE_AFTER", 48 * 3600.0,
                               "seconds after which an unfinished job expires", number)
    max_attempts: int = knob("RELAY_MAX_ATTEMPTS", 3, "tasks one job may use: a task EvoLink fails with a code that "
                             "says try again (`service_error`, `generation_timeout`…) is followed by a new one, up to "
                             "this many in all", bounded(1, 10))
    retry_backoff: float = knob("RELAY_RETRY_BACKOFF", 30.0, "seconds before a job's second task; each later one "
                                "waits twice as long, with jitter; the reconciler's first pass after the wait sends it",
                                positive)
    at_risk_after: float = knob("RELAY_AT_RISK_AFTER", 20 * 3600.0, "seconds after EvoLink completed a task whose "
                                "result is still not copied before the job publishes `job.at_risk` (the result's "
                                "URL expires 24 h after completion; then the job fails with `result_expired`)",
                                positive)
    worker_concurrency: int = knob("RELAY_WORKERS", 2, "ingest worker threads", bounded(1))
    media_processes: int | None = knob(
        "RELAY_MEDIA_PROCESSES", None, "child processes `serve` reads stored videos in (facts, the decode that proves "
        "they play, poster and last frame), so it uses more than one core; `0` reads them in the ingest threads. "
        "Videos in S3 and Lambda functions always read in the calling thread", _processes,
        shown="one per ingest worker")
    subscribers: tuple[tuple[str, tuple[str, ...]], ...] = knob(
        "RELAY_SUBSCRIBERS", (("default", ("*",)),),
        "subscribers and their filters: `archive:*,notify:completed+failed,art:storyboard.completed` (a job's types "
        "by outcome, a storyboard's as `storyboard.completed`/`storyboard.failed`, or full types; tenants after `@`)",
        _subscribers, shown="`default:*`")
    event_retention: float = knob("RELAY_EVENT_RETENTION", 30.0, "days the event log keeps each published event "
                                  "(what `events replay` can re-deliver; fractions allowed)", _days)
    job_retention: float = knob("RELAY_JOB_RETENTION", 90.0, "days a finished job's record is kept (on AWS, through "
                                "the table's TTL)", _days)
    video_retention: float | None = knob(
        "RELAY_VIDEO_RETENTION", None, "days the videos, manifests, frames and late-callback records under `jobs/` "
        "are kept (on AWS, the bucket's lifecycle rule: `videoRetention` in `serverless.yml`)", _days,
        shown="kept forever")
    upload_grace: int = knob("RELAY_UPLOAD_GRACE", 18 * 3600, "seconds an upload is kept after its URL expires "
                             "(`RELAY_UPLOAD_URL_TTL`)", bounded(0))
    queue_retention: float = knob("RELAY_QUEUE_RETENTION", 14.0, "local backend: days a message, dead letter or "
                                  "not, is kept unacknowledged (SQS keeps them as `infra/resources/queues.yml` says)",
                                  _days)
    gc_every: float = knob("RELAY_GC_EVERY", 3600.0, "seconds between clean-up passes (`seedance-relay gc` runs one "
                           "by hand)", positive)
    log_level: str = knob("RELAY_LOG_LEVEL", "info", "`debug`, `info`, `warning`, `error` or `critical`. Anything "
                          "else is refused at start", choice(LOG_LEVELS))
    log_format: str = knob("RELAY_LOG_FORMAT", "auto", "`auto` (JSON off a terminal and in Lambda, readable text "
                           "on a terminal), `json` or `console`. Anything else is refused at start",
                           choice(LOG_FORMATS))
    max_header_bytes: int = knob("RELAY_MAX_HEADER_BYTES", 32 * 1024, "a request head over it is answered `431` and "
                                 "the connection closed", bounded(1024))
    max_headers: int = knob("RELAY_MAX_HEADERS", 100, "a request with more header lines is answered `431` and the "
                            "connection closed", bounded(10))
    header_timeout: float = knob("RELAY_HEADER_TIMEOUT", 10.0, "seconds for a request's head to arrive, else `408`",
                                 positive)
    body_timeout: float = knob("RELAY_BODY_TIMEOUT", 300.0, "seconds for a request's whole body after its head, "
                               "else `408`", positive)
    max_connections: int = knob("RELAY_MAX_CONNECTIONS", 512, "connections beyond it are answered `503` and closed",
                                bounded(1))
    callback_max_bytes: int = knob("RELAY_CALLBACK_MAX_BYTES", 256 * 1024, "the largest provider callback body "
                                   "accepted, in bytes; a larger one is answered `413`", bounded(1024))
    download_max_bytes: int = knob("RELAY_DOWNLOAD_MAX_BYTES", 2 * 1024**3, "the largest result video copied, "
                                   "in bytes; a larger one fails the job", bounded(1))
    output_checks: str = knob("RELAY_OUTPUT_CHECKS", "report", "`report` records each stored video's checks against "
                              "its request; `strict` also fails a job whose video fails one (`output_mismatch`)",
                              choice(("report", "strict")))

    def __repr__(self) -> str:  # never print secrets
        shown = {f.name: getattr(self, f.name) for f in fields(self) if not knob_of(f).secret}
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @property
    def uses_sandbox(self) -> bool:
        return not self.evolink_api_key

    @property
    def has_secret_parameters(self) -> bool:
        """Whether a secret is given only as an SSM parameter (``*_PARAM``) still to be read."""
        return any(param and not value for param, value in (
            (self.evolink_api_key_param, self.evolink_api_key), (self.callback_secret_param, self.callback_secrets),
            (self.api_keys_param, self.api_keys), (self.admin_keys_param, self.admin_keys)))

    def configured_tenants(self) -> set[str]:
        """The tenants of the keys in ``RELAY_API_KEYS`` and ``RELAY_ADMIN_KEYS`` (``default`` for bare keys)."""
        return {key.tenant for entries, role, name in ((self.api_keys, Role.SUBMITTER, "RELAY_API_KEYS"),
                                                       (self.admin_keys, Role.ADMIN, "RELAY_ADMIN_KEYS"))
                for key in parse_keys(",".join(entries), role, name)}

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if env is None else env)
        values = {f.name: knob_of(f).value(env, default_of(f)) for f in fields(cls) if not knob_of(f).pattern}
        values.update(_webhook_secrets(env, values["webhooks"]))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _webhook_secrets(env: Mapping[str, str], webhooks: tuple[tuple[str, str], ...]) -> dict[str, dict[str, str]]:
    """``RELAY_WEBHOOK_SECRET_<NAME>`` and its ``_PARAM``, for each listed webhook that has one."""
    secrets = {name: env[v] for name, _ in webhooks if (env.get(v := secret_variable(name)) or "").strip()}
    params = {name: env[v] for name, _ in webhooks if env.get(v := secret_variable(name) + PARAM_SUFFIX)}
    return {"webhook_secrets": secrets, "webhook_secret_params": params}


def knobs() -> Iterator[tuple[Field[Any], Knob]]:
    """Every setting, in order: its field and its knob."""
    for f in fields(Settings):
        yield f, knob_of(f)


# The variable Settings.from_env reads, by field (patterns such as RELAY_WEBHOOK_SECRET_<NAME> included).
VARIABLES = {f.name: k.env for f, k in knobs()}


def known_variables() -> frozenset[str]:
    """Every variable some setting reads by exact name (patterns are matched by their prefix)."""
    return frozenset(name for _, k in knobs() if not k.pattern for name in (k.env, *k.also))


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """One sentence per ``RELAY_*`` variable in ``env`` that no setting reads, with a likely meant one."""
    known = known_variables()
    prefixes = tuple(k.prefix for _, k in knobs() if k.pattern)
    sentences = []
    for name in sorted(env):
        if not name.startswith("RELAY_") or name in known or name.startswith(prefixes):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else " (it is ignored)"
        sentences.append(f"{name} is not a setting{hint}")
    return sentences


def configuration_table() -> str:
    """The README's configuration table, in Markdown: one row per variable, in the order of :class:`Settings`."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{k.env}` | {k.shown or _shown(default_of(f))} | {k.help} |" for f, k in knobs()]
    return "\n".join(rows) + "\n"


def _shown(value: Any) -> str:
    if value is None or value == () or value == {}:
        return "—"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"
