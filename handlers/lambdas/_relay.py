"""One relay per Lambda container, built on the first invocation from the environment.

Its figures go out as CloudWatch EMF lines: each entry point calls ``flush_metrics()`` when an
invocation ends. ``POWERTOOLS_METRICS_NAMESPACE`` and ``POWERTOOLS_SERVICE_NAME`` name the
namespace and the ``service`` dimension (``serverless.yml`` sets both).
"""

from __future__ import annotations

import os
from functools import cache

from handlers.adapters.aws.secrets import with_secrets
from handlers.app.emf import DEFAULT_NAMESPACE, DEFAULT_SERVICE, EmfBuffer
from handlers.app.relay import Relay
from handlers.app.settings import Settings
from handlers.base.logs import configure

__all__ = ["emf", "flush_metrics", "relay", "settings"]


@cache
def settings() -> Settings:
    resolved = Settings.from_env(with_secrets(os.environ))
    configure(resolved.log_level, "json")
    return resolved


@cache
def emf() -> EmfBuffer:
    env = settings().extra
    return EmfBuffer(namespace=env.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE,
                     service=env.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE)


@cache
def relay() -> Relay:
    from handlers.app.wiring import build_relay

    return build_relay(settings(), metrics_sink=emf())


def flush_metrics() -> None:
    """Write the invocation's figures as EMF lines (nothing when the relay was never built)."""
    if relay.cache_info().currsize:
        emf().flush()
