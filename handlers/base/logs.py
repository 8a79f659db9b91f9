"""structlog, configured once: JSON off a terminal and in Lambda, readable on a terminal.

Secrets never reach a log: :func:`redact` scrubs known secret values and secret-looking keys
from every event before it is rendered.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

__all__ = ["FORMATS", "configure", "get_logger", "redact", "register_secret"]

FORMATS = ("auto", "json", "console")  # RELAY_LOG_FORMAT

_SECRET_KEYS = re.compile(r"(api_?key|secret|token|authorization|password)", re.IGNORECASE)
_TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"']+")
_secrets: set[str] = set()


def register_secret(*values: str | None) -> None:
    """Remember values that must never be printed (API keys, callback secrets)."""
    _secrets.update(v for v in values if v and len(v) >= 4)


def _scrub(value: Any) -> Any:
    if value is None or isinstance(value, int | float):  # most values: nothing to scrub
        return value
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, "[redacted]")
        return _TOKEN_IN_URL.sub(r"\1[redacted]", value) if "token=" in value else value
    if isinstance(value, dict):
        return {k: "[redacted]" if _is_secret_key(k) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEYS.search(key)) and key != "token_kid"


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: scrub secrets from every key and value."""
    for key in list(event):
        event[key] = "[redacted]" if _is_secret_key(key) else _scrub(event[key])
    return event


def _use_json(fmt: str, stream: Any) -> bool:
    if fmt in ("json", "console"):
        return fmt == "json"
    in_lambda = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
    return in_lambda or not (hasattr(stream, "isatty") and stream.isatty())


def configure(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Configure structlog and the stdlib root logger; safe to call more than once.

    ``fmt`` is one of :data:`FORMATS`; anything else is a ``ValueError`` listing them.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    stream = stream or sys.stderr
    shared: Iterable[Any] = (
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    )
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if _use_json(fmt, stream)
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level.upper(), stream=stream, format="%(name)s %(message)s")
    for noisy in ("httpx", "httpcore", "botocore", "boto3", "urllib3", "mangum"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None, **context: Any) -> Any:
    return structlog.get_logger(name, **context)
