"""One relay per Lambda container, built on the first invocation from the environment."""

from __future__ import annotations

import os
from functools import cache

from handlers.adapters.aws.secrets import with_secrets
from handlers.logs import configure
from handlers.relay import Relay
from handlers.settings import Settings

__all__ = ["relay", "settings"]


@cache
def settings() -> Settings:
    resolved = Settings.from_env(with_secrets(os.environ))
    configure(resolved.log_level, "json")
    return resolved


@cache
def relay() -> Relay:
    from handlers.wiring import build_relay

    return build_relay(settings())
