"""The sandbox's switches: each a CLI flag and an environment variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from handlers.app.settings import env_float, env_int
from handlers.base.errors import ConfigurationError

__all__ = ["SWITCHES", "SandboxSettings"]

# name: (environment variable, help) — the CLI builds its flags from this table.
SWITCHES: dict[str, tuple[str, str]] = {
    "speed": ("SANDBOX_SPEED", "generation runs X times faster than its estimated_time"),
    "callback_drop": ("SANDBOX_CALLBACK_DROP", "probability that a task's callbacks are never sent"),
    "callback_duplicate": ("SANDBOX_CALLBACK_DUPLICATE", "each callback sent N extra times, concurrently"),
    "callback_delay": ("SANDBOX_CALLBACK_DELAY", "seconds to wait before sending a callback"),
    "fail_rate": ("SANDBOX_FAIL_RATE", "probability that a task fails"),
    "fail_code": ("SANDBOX_FAIL_CODE", "error code(s) of failed tasks, comma-separated to take turns "
                  "('cancelled' gives status cancelled)"),
    "create_error_rate": ("SANDBOX_CREATE_ERROR_RATE", "probability of 429/500/503 on create"),
    "download_delay": ("SANDBOX_DOWNLOAD_DELAY", "seconds before a result download starts"),
    "url_ttl": ("SANDBOX_URL_TTL", "seconds result URLs stay valid"),
}


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    speed: float = 1.0
    callback_drop: float = 0.0
    callback_duplicate: int = 0
    callback_delay: float = 0.0
    fail_rate: float = 0.0
    fail_code: str = "service_error"
    create_error_rate: float = 0.0
    download_delay: float = 0.0
    url_ttl: float = 24 * 3600.0
    api_key: str | None = None
    data_dir: Path = Path(".relay/sandbox")
    seed: int | None = None
    callback_timeout: float = 10.0
    callback_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0)

    def __post_init__(self) -> None:
        _check(self.speed > 0, "speed", "must be greater than 0")
        for name in ("callback_drop", "fail_rate", "create_error_rate"):
            _check(0.0 <= getattr(self, name) <= 1.0, name, "must be a probability from 0 to 1")
        _check(self.callback_duplicate >= 0, "callback_duplicate", "must be 0 or more")
        for name in ("callback_delay", "download_delay", "url_ttl"):
            _check(getattr(self, name) >= 0, name, "must be 0 or more seconds")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> SandboxSettings:
        env = dict(os.environ if env is None else env)
        defaults = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in SWITCHES:
                values[f.name] = _read(env, SWITCHES[f.name][0], getattr(defaults, f.name))
        values["api_key"] = env.get("SANDBOX_API_KEY") or None
        if env.get("SANDBOX_DATA_DIR"):
            values["data_dir"] = Path(env["SANDBOX_DATA_DIR"])
        if env.get("SANDBOX_SEED"):
            values["seed"] = env_int(env, "SANDBOX_SEED", 0)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> SandboxSettings:
        return replace(self, **changes)


def _read(env: Mapping[str, str], name: str, default: Any) -> Any:
    if isinstance(default, float):
        return env_float(env, name, default)
    if isinstance(default, int):
        return env_int(env, name, default)
    return env.get(name) or default


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        env_name = SWITCHES.get(name, (name.upper(), ""))[0]
        raise ConfigurationError(f"sandbox {name} ({env_name}) {message}")
