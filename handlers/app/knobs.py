"""How one setting is declared and read: a :class:`Knob` (variable, help, reader) on a dataclass field.

Every reader takes ``(env, name, default)`` and returns the typed value, or raises
:class:`ConfigurationError` with one line naming the variable and what it accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from handlers.base.errors import ConfigurationError

__all__ = [
    "Knob",
    "Reader",
    "bounded",
    "choice",
    "default_of",
    "env_bool",
    "env_float",
    "env_int",
    "env_list",
    "knob",
    "knob_of",
    "number",
    "path",
    "positive",
    "text",
    "url",
    "whole",
    "words",
]

T = TypeVar("T")
Reader = Callable[[Mapping[str, str], str, Any], Any]


@dataclass(frozen=True, slots=True)
class Knob:
    """One setting as the environment and the README know it.

    ``read`` is ``None`` for a pattern (``RELAY_WEBHOOK_SECRET_<NAME>``): ``Settings.from_env``
    reads those itself. ``also`` are older names read when ``env`` is unset. ``shown`` is the
    default as the README shows it (Markdown), when the field's own default would mislead.
    """

    env: str
    help: str
    read: Reader | None
    also: tuple[str, ...] = ()
    shown: str | None = None
    secret: bool = False

    @property
    def pattern(self) -> bool:
        return self.read is None

    @property
    def prefix(self) -> str:
        """The fixed start of a pattern's names (``RELAY_WEBHOOK_SECRET_``), else the name itself."""
        return self.env.split("<", 1)[0]

    def value(self, env: Mapping[str, str], default: Any) -> Any:
        if self.read is None:
            raise TypeError(f"{self.env} is a pattern; Settings.from_env reads it")
        name = next((n for n in (self.env, *self.also) if (env.get(n) or "").strip()), self.env)
        return self.read(env, name, default)


def knob(env: str, default: Any, help: str, read: Reader | None = None, *,
         also: tuple[str, ...] = (), shown: str | None = None, secret: bool = False) -> Any:
    """A dataclass field whose value comes from ``env`` (a ``dict`` default becomes a factory)."""
    metadata = {"knob": Knob(env=env, help=help, read=read, also=also, shown=shown, secret=secret)}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata, repr=not secret)
    return field(default=default, metadata=metadata, repr=not secret)


def knob_of(f: Field[Any]) -> Knob:
    found = f.metadata.get("knob")
    if not isinstance(found, Knob):
        raise TypeError(f"field {f.name} is not declared with knob()")
    return found


def default_of(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise TypeError(f"field {f.name} has no default")


# --- readers ---------------------------------------------------------------------------------------------


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


def text(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    """The value as given; unset or empty gives the default."""
    return env.get(name) or default


def url(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    """A base URL without its trailing slash."""
    return (env.get(name) or "").rstrip("/") or default


def path(env: Mapping[str, str], name: str, default: Path) -> Path:
    return Path(env[name]) if env.get(name) else default


def words(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated values, blanks dropped."""
    return env_list(env, name) or default


def whole(env: Mapping[str, str], name: str, default: int) -> int:
    return env_int(env, name, default)


def number(env: Mapping[str, str], name: str, default: float) -> float:
    return env_float(env, name, default)


def bounded(low: int, high: int | None = None) -> Reader:
    """A whole number from ``low`` to ``high`` (or at least ``low``)."""
    def read(env: Mapping[str, str], name: str, default: int) -> int:
        value = env_int(env, name, default)
        if value < low or (high is not None and value > high):
            accepted = f"{low} to {high}" if high is not None else f"at least {low}"
            raise ConfigurationError(f"{name}={value} is out of range: expected {accepted}")
        return value

    return read


def positive(env: Mapping[str, str], name: str, default: float) -> float:
    """A number of seconds above 0."""
    value = env_float(env, name, default)
    if value <= 0:
        raise ConfigurationError(f"{name}={value:g} is out of range: expected a number of seconds above 0")
    return value


def choice(accepted: tuple[str, ...]) -> Reader:
    """One of ``accepted``, case-insensitive."""
    def read(env: Mapping[str, str], name: str, default: str) -> str:
        value = (env.get(name) or "").strip().lower() or default
        if value not in accepted:
            raise ConfigurationError(f"{name}={env.get(name)!r} is not valid: expected one of {', '.join(accepted)}")
        return value

    return read
