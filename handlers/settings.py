"""Settings, read once from the environment into an immutable object.

Precedence everywhere: explicit argument > environment > default. Nothing below the
entry points reads ``os.environ``; they build a :class:`Settings` and pass it down.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from handlers.errors import ConfigurationError

__all__ = ["Settings", "env_bool", "env_float", "env_int", "env_list", "parse_subscribers"]

T = TypeVar("T")

DEFAULT_EVOLINK_URL = "https://api.evolink.ai"


def _parse(env: Mapping[str, str], name: str, default: T, cast: Callable[[str], T]) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return cast(raw.strip())
    except ValueError as exc:
        raise ConfigurationError(f"{name}={raw!r} is not valid: {exc}") from exc


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
    return _parse(env, name, default, int)


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    return _parse(env, name, default, float)


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
        backend = env.get("RELAY_BACKEND", "local").strip() or "local"
        if backend not in ("local", "aws"):
            raise ConfigurationError(f"RELAY_BACKEND={backend!r}: expected 'local' or 'aws'")
        values: dict[str, Any] = {
            "evolink_api_key": env.get("EVOLINK_API_KEY") or None,
            "evolink_base_url": (env.get("EVOLINK_BASE_URL") or DEFAULT_EVOLINK_URL).rstrip("/"),
            "public_url": (env.get("RELAY_PUBLIC_URL") or "").rstrip("/") or None,
            "callback_secrets": env_list(env, "RELAY_CALLBACK_SECRET"),
            "api_keys": env_list(env, "RELAY_API_KEYS"),
            "data_dir": Path(env.get("RELAY_DATA_DIR") or ".relay"),
            "backend": backend,
            "host": env.get("RELAY_HOST") or "127.0.0.1",
            "port": env_int(env, "RELAY_PORT", 8000),
            "reconcile_every": env_float(env, "RELAY_RECONCILE_EVERY", 300.0),
            "reconcile_grace": env_float(env, "RELAY_RECONCILE_GRACE", 120.0),
            "expire_after": env_float(env, "RELAY_EXPIRE_AFTER", 48 * 3600.0),
            "worker_concurrency": env_int(env, "RELAY_WORKERS", 2),
            "upload_url_ttl": env_float(env, "RELAY_UPLOAD_URL_TTL", 6 * 3600.0),
            "queue_visibility_timeout": env_float(env, "RELAY_QUEUE_VISIBILITY_TIMEOUT", 900.0),
            "queue_max_receives": env_int(env, "RELAY_QUEUE_MAX_RECEIVES", 8),
            "ingest_lease": env_float(env, "RELAY_INGEST_LEASE", 90.0),
            "subscribers": parse_subscribers(env.get("RELAY_SUBSCRIBERS") or "default:*"),
            "log_level": env.get("RELAY_LOG_LEVEL") or "info",
            "log_format": env.get("RELAY_LOG_FORMAT") or "auto",
            "extra": env,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


_HIDDEN = frozenset({"evolink_api_key", "callback_secrets", "api_keys", "extra"})
