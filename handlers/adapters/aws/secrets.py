"""Secrets for Lambda: fetched at cold start from SSM Parameter Store, never kept in the environment.

For each secret setting ``NAME`` (``EVOLINK_API_KEY``, ``RELAY_CALLBACK_SECRET``,
``RELAY_API_KEYS``, ``RELAY_ADMIN_KEYS``), ``NAME_PARAM`` names a SecureString parameter to read with decryption.
A plain ``NAME`` in the environment still wins (local runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from handlers.base.errors import ConfigurationError
from handlers.base.logs import register_secret

__all__ = ["SECRET_SETTINGS", "with_secrets"]

SECRET_SETTINGS = ("EVOLINK_API_KEY", "RELAY_CALLBACK_SECRET", "RELAY_API_KEYS", "RELAY_ADMIN_KEYS")


def with_secrets(env: Mapping[str, str], ssm: Any | None = None) -> dict[str, str]:
    """``env`` plus each secret whose ``*_PARAM`` names an SSM parameter."""
    resolved = dict(env)
    wanted = {name: env[f"{name}_PARAM"] for name in SECRET_SETTINGS
              if env.get(f"{name}_PARAM") and not env.get(name)}
    if not wanted:
        return resolved
    if ssm is None:
        import boto3

        ssm = boto3.client("ssm")
    for name, parameter in wanted.items():
        resolved[name] = _read(ssm, name, parameter)
        entries = [entry.strip() for entry in resolved[name].split(",") if entry.strip()]
        register_secret(*entries, *(entry.partition(":")[2] for entry in entries if ":" in entry))
    return resolved


def _read(ssm: Any, name: str, parameter: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    except (ClientError, BotoCoreError) as exc:
        raise ConfigurationError(f"{name}: cannot read SSM parameter {parameter!r}: {exc}") from exc
    return str(value)
