"""Settings, read once from the environment into an immutable object.

Precedence everywhere: explicit argument > environment > default. Nothing below the
entry points reads ``os.environ``; they build a :class:`Settings` and pass it down.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from handlers.base.errors import ConfigurationError
from handlers.base.logs import FORMATS

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "VARIABLES",
    "Settings",
    "env_bool",
    "env_float",
    "env_int",
    "env_list",
    "known_variables",
    "parse_subscribers",
    "unknown_variables",
]

T = TypeVar("T")

DEFAULT_EVOLINK_URL = "https://api.evolink.ai"
LOG_FORMATS = FORMATS
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
BACKENDS = ("local", "aws")

# The variables Settings.from_env reads, by field.
VARIABLES = {
    "evolink_api_key": "EVOLINK_API_KEY", "evolink_base_url": "EVOLINK_BASE_URL",
    "public_url": "RELAY_PUBLIC_URL", "callback_secrets": "RELAY_CALLBACK_SECRET", "api_keys": "RELAY_API_KEYS",
    "data_dir": "RELAY_DATA_DIR", "backend": "RELAY_BACKEND", "host": "RELAY_HOST", "port": "RELAY_PORT",
    "reconcile_every": "RELAY_RECONCILE_EVERY", "reconcile_grace": "RELAY_RECONCILE_GRACE",
    "expire_after": "RELAY_EXPIRE_AFTER", "worker_concurrency": "RELAY_WORKERS",
    "upload_url_ttl": "RELAY_UPLOAD_URL_TTL", "queue_visibility_timeout": "RELAY_QUEUE_VISIBILITY_TIMEOUT",
    "queue_max_receives": "RELAY_QUEUE_MAX_RECEIVES", "ingest_lease": "RELAY_INGEST_LEASE",
    "subscribers": "RELAY_SUBSCRIBERS", "log_level": "RELAY_LOG_LEVEL", "log_format": "RELAY_LOG_FORMAT",
    "max_header_bytes": "RELAY_MAX_HEADER_BYTES", "max_headers": "RELAY_MAX_HEADERS",
    "header_timeout": "RELAY_HEADER_TIMEOUT", "body_timeout": "RELAY_BODY_TIMEOUT",
    "max_connections": "RELAY_MAX_CONNECTIONS",
}
# Read from ``Settings.extra`` by the modules that own them (AWS names, webhooks, the CLI client).
_VARIABLES_ELSEWHERE = (
    "RELAY_URL", "RELAY_API_KEY",  # handlers/cli/remote.py
    "RELAY_TABLE", "RELAY_BUCKET", "RELAY_INGEST_QUEUE", "RELAY_REQUESTS_QUEUE", "RELAY_TOPIC",
    "RELAY_SUBSCRIBER_QUEUE_PREFIX", "RELAY_KMS_KEY_ID",  # handlers/adapters/aws/names.py
    "RELAY_WEBHOOKS", "RELAY_WEBHOOK_TIMEOUT", "RELAY_WEBHOOK_MAX_BACKOFF",  # handlers/webhooks
    "RELAY_WEBHOOK_TARGET",  # handlers/lambdas/webhooks.py
)
_SECRET_PARAMETERS = ("EVOLINK_API_KEY", "RELAY_CALLBACK_SECRET", "RELAY_API_KEYS")  # NAME_PARAM: an SSM name
_VARIABLE_PREFIXES = ("RELAY_WEBHOOK_SECRET_",)  # RELAY_WEBHOOK_SECRET_<NAME>[_PARAM]


def known_variables() -> frozenset[str]:
    """Every ``RELAY_*`` (and ``EVOLINK_*``) variable some part of the relay reads by exact name."""
    names = {*VARIABLES.values(), *_VARIABLES_ELSEWHERE}
    return frozenset(names | {f"{name}_PARAM" for name in _SECRET_PARAMETERS})


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """One sentence per ``RELAY_*`` variable in ``env`` that no setting reads, with a likely meant one."""
    known = known_variables()
    sentences = []
    for name in sorted(env):
        if not name.startswith("RELAY_") or name in known or name.startswith(_VARIABLE_PREFIXES):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else " (it is ignored)"
        sentences.append(f"{name} is not a setting{hint}")
    return sentences


def _parse(env: Mapping[str, str], name: str, default: T, cast: Callable[[str], T]) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return cast(raw.strip())
    except ValueError as exc:
        raise ConfigurationError(f"{name}={raw!r} is not valid: {exc}") from exc


def _whole(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("expected a whole number") from None


def _number(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("expected a finite number")
    return value


def _bounded_int(env: Mapping[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    value = env_int(env, name, default)
    if value < low or (high is not None and value > high):
        accepted = f"{low} to {high}" if high is not None else f"at least {low}"
        raise ConfigurationError(f"{name}={value} is out of range: expected {accepted}")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = env_float(env, name, default)
    if value <= 0:
        raise ConfigurationError(f"{name}={value:g} is out of range: expected a number of seconds above 0")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, accepted: tuple[str, ...]) -> str:
    value = (env.get(name) or "").strip().lower() or default
    if value not in accepted:
        raise ConfigurationError(f"{name}={env.get(name)!r} is not valid: expected one of {', '.join(accepted)}")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false")


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    return _parse(env, name, default, _bool)


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    return _parse(env, name, default, _whole)


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    return _parse(env, name, default, _number)


def env_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def parse_subscribers(raw: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``name:filter`` pairs, comma-separated; a filter is ``*`` or outcomes joined by ``+``.

    ``archive:*,notify:completed+failed`` gives subscriber ``archive`` every event and
    ``notify`` only completions and failures.
    """
    parsed = []
    for entry in (e.strip() for e in raw.split(",") if e.strip()):
        name, _, spec = entry.partition(":")
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigurationError(f"RELAY_SUBSCRIBERS: bad subscriber name in {entry!r}")
        outcomes = tuple(o.strip() for o in (spec or "*").split("+") if o.strip())
        parsed.append((name, outcomes or ("*",)))
    return tuple(parsed)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the relay needs to know about its environment."""

    evolink_api_key: str | None = None
    evolink_base_url: str = DEFAULT_EVOLINK_URL
    public_url: str | None = None
    callback_secrets: tuple[str, ...] = ()
    api_keys: tuple[str, ...] = ()
    data_dir: Path = Path(".relay")
    backend: str = "local"
    host: str = "127.0.0.1"
    port: int = 8000
    reconcile_every: float = 300.0
    reconcile_grace: float = 120.0
    expire_after: float = 48 * 3600.0
    worker_concurrency: int = 2
    subscribers: tuple[tuple[str, tuple[str, ...]], ...] = (("default", ("*",)),)
    queue_visibility_timeout: float = 900.0
    ingest_lease: float = 90.0
    queue_max_receives: int = 8
    callback_max_bytes: int = 256 * 1024
    download_max_bytes: int = 2 * 1024**3
    upload_url_ttl: float = 6 * 3600.0
    log_level: str = "info"
    log_format: str = "auto"
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 300.0
    max_connections: int = 512
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:  # never print secrets
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _HIDDEN}
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @property
    def uses_sandbox(self) -> bool:
        return not self.evolink_api_key

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if env is None else env)
        backend = _choice(env, "RELAY_BACKEND", "local", BACKENDS)
        values: dict[str, Any] = {
            "evolink_api_key": env.get("EVOLINK_API_KEY") or None,
            "evolink_base_url": (env.get("EVOLINK_BASE_URL") or DEFAULT_EVOLINK_URL).rstrip("/"),
            "public_url": (env.get("RELAY_PUBLIC_URL") or "").rstrip("/") or None,
            "callback_secrets": env_list(env, "RELAY_CALLBACK_SECRET"),
            "api_keys": env_list(env, "RELAY_API_KEYS"),
            "data_dir": Path(env.get("RELAY_DATA_DIR") or ".relay"),
            "backend": backend,
            "host": env.get("RELAY_HOST") or "127.0.0.1",
            "port": _bounded_int(env, "RELAY_PORT", 8000, 1, 65535),
            "reconcile_every": env_float(env, "RELAY_RECONCILE_EVERY", 300.0),
            "reconcile_grace": env_float(env, "RELAY_RECONCILE_GRACE", 120.0),
            "expire_after": env_float(env, "RELAY_EXPIRE_AFTER", 48 * 3600.0),
            "worker_concurrency": _bounded_int(env, "RELAY_WORKERS", 2, 1),
            "upload_url_ttl": env_float(env, "RELAY_UPLOAD_URL_TTL", 6 * 3600.0),
            "queue_visibility_timeout": env_float(env, "RELAY_QUEUE_VISIBILITY_TIMEOUT", 900.0),
            "queue_max_receives": env_int(env, "RELAY_QUEUE_MAX_RECEIVES", 8),
            "ingest_lease": env_float(env, "RELAY_INGEST_LEASE", 90.0),
            "subscribers": parse_subscribers(env.get("RELAY_SUBSCRIBERS") or "default:*"),
            "log_level": _choice(env, "RELAY_LOG_LEVEL", "info", LOG_LEVELS),
            "log_format": _choice(env, "RELAY_LOG_FORMAT", "auto", LOG_FORMATS),
            "max_header_bytes": _bounded_int(env, "RELAY_MAX_HEADER_BYTES", 32 * 1024, 1024),
            "max_headers": _bounded_int(env, "RELAY_MAX_HEADERS", 100, 10),
            "header_timeout": _positive(env, "RELAY_HEADER_TIMEOUT", 10.0),
            "body_timeout": _positive(env, "RELAY_BODY_TIMEOUT", 300.0),
            "max_connections": _bounded_int(env, "RELAY_MAX_CONNECTIONS", 512, 1),
            "extra": env,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


_HIDDEN = frozenset({"evolink_api_key", "callback_secrets", "api_keys", "extra"})
