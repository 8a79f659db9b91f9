"""The sandbox's switches: each a CLI flag and an environment variable, declared as the relay's settings are."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from handlers.app.knobs import default_of, knob, number, path, text, whole
from handlers.base.errors import ConfigurationError
from handlers.domain.pricing import DEFAULT_PRICE_TABLE, PriceTable
from handlers.sandbox.wrong import WRONG_KINDS, wrong_kinds

__all__ = ["SWITCHES", "SandboxSettings"]

# The settings the CLI offers as flags of ``serve`` and ``sandbox`` (the others have their own options).
_FLAGS = ("speed", "callback_drop", "callback_duplicate", "callback_delay", "fail_rate", "fail_code",
          "wrong_output_rate", "wrong_output", "create_error_rate", "download_delay", "url_ttl", "quota",
          "max_concurrency")


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    speed: float = knob("SANDBOX_SPEED", 1.0, "generation runs X times faster than its estimated_time", number)
    callback_drop: float = knob("SANDBOX_CALLBACK_DROP", 0.0, "probability that a task's callbacks are never sent",
                                number)
    callback_duplicate: int = knob("SANDBOX_CALLBACK_DUPLICATE", 0, "each callback sent N extra times, concurrently",
                                   whole)
    callback_delay: float = knob("SANDBOX_CALLBACK_DELAY", 0.0, "seconds to wait before sending a callback", number)
    fail_rate: float = knob("SANDBOX_FAIL_RATE", 0.0, "probability that a task fails", number)
    fail_code: str = knob("SANDBOX_FAIL_CODE", "service_error", "error code(s) of failed tasks, comma-separated to "
                          "take turns ('cancelled' gives status cancelled)", text)
    wrong_output_rate: float = knob("SANDBOX_WRONG_OUTPUT_RATE", 0.0, "probability that a completed task's video "
                                    "does not match its request (see SANDBOX_WRONG_OUTPUT)", number)
    wrong_output: str = knob("SANDBOX_WRONG_OUTPUT", ",".join(WRONG_KINDS), "how a wrong video is wrong: "
                             f"{', '.join(WRONG_KINDS)}; comma-separated to take turns", text)
    create_error_rate: float = knob("SANDBOX_CREATE_ERROR_RATE", 0.0, "probability of 429/500/503 on create", number)
    download_delay: float = knob("SANDBOX_DOWNLOAD_DELAY", 0.0, "seconds before a result download starts", number)
    url_ttl: float = knob("SANDBOX_URL_TTL", 24 * 3600.0, "seconds result URLs stay valid", number)
    quota: float | None = knob("SANDBOX_QUOTA", None, "credits the account holds: a create that would reserve more "
                               "than remain answers 402 insufficient_quota (default: unlimited)", number)
    max_concurrency: int | None = knob("SANDBOX_MAX_CONCURRENCY", None, "tasks not yet final at once (the plan's "
                                       "limit): past it, create answers 429 with Retry-After (default: unlimited)",
                                       whole)
    api_key: str | None = knob("SANDBOX_API_KEY", None, "the bearer key the sandbox accepts (default: any "
                               "non-empty key)", text, secret=True)
    data_dir: Path = knob(  # noqa: RUF009 (knob() declares a field, as dataclasses.field does)
        "SANDBOX_DATA_DIR", Path(".relay/sandbox"), "where tasks and result videos live", path)
    seed: int | None = knob("SANDBOX_SEED", None, "seed of the random choices (drops, failures), for repeatable "
                            "runs", whole)
    prices: PriceTable = DEFAULT_PRICE_TABLE  # what tasks reserve and use (the relay's RELAY_PRICE_TABLE)
    callback_timeout: float = 10.0
    callback_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0)

    def __post_init__(self) -> None:
        _check(self.speed > 0, "speed", "must be greater than 0")
        for name in ("callback_drop", "fail_rate", "wrong_output_rate", "create_error_rate"):
            _check(0.0 <= getattr(self, name) <= 1.0, name, "must be a probability from 0 to 1")
        _check(self.callback_duplicate >= 0, "callback_duplicate", "must be 0 or more")
        for name in ("callback_delay", "download_delay", "url_ttl"):
            _check(getattr(self, name) >= 0, name, "must be 0 or more seconds")
        _check(self.quota is None or self.quota >= 0, "quota", "must be 0 or more credits")
        _check(self.max_concurrency is None or self.max_concurrency >= 1, "max_concurrency", "must be 1 or more tasks")
        unknown = sorted(set(wrong_kinds(self.wrong_output)) - set(WRONG_KINDS))
        _check(not unknown, "wrong_output", f"names unknown kinds {unknown}: expected some of {', '.join(WRONG_KINDS)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> SandboxSettings:
        env = dict(os.environ if env is None else env)
        values = {f.name: f.metadata["knob"].value(env, default_of(f)) for f in fields(cls) if "knob" in f.metadata}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> SandboxSettings:
        return replace(self, **changes)


# name: (environment variable, help) — the CLI builds its flags from this table.
SWITCHES: dict[str, tuple[str, str]] = {
    f.name: (f.metadata["knob"].env, f.metadata["knob"].help) for f in fields(SandboxSettings) if f.name in _FLAGS}


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        env_name = SWITCHES.get(name, (name.upper(), ""))[0]
        raise ConfigurationError(f"sandbox {name} ({env_name}) {message}")
