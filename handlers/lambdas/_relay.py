"""One relay per Lambda container, built on the first invocation from the environment.

Its figures go out as CloudWatch EMF lines: each entry point calls ``flush_metrics()`` when an
invocation ends. ``POWERTOOLS_METRICS_NAMESPACE`` and ``POWERTOOLS_SERVICE_NAME`` name the
namespace and the ``service`` dimension (``serverless.yml`` sets both).
"""

from __future__ import annotations

import os
from functools import cache

from handlers.adapters.aws.clients import aws_client
from handlers.adapters.aws.secrets import with_secrets
from handlers.app.emf import EmfBuffer
from handlers.app.relay import Relay
from handlers.app.settings import Settings
from handlers.base.logs import configure

__all__ = ["emf", "flush_metrics", "relay", "settings"]


@cache
def settings() -> Settings:
    """The settings, with each secret that only a ``*_PARAM`` names read from SSM (one client, built if needed)."""
    resolved = Settings.from_env(os.environ)
    if resolved.has_secret_parameters:
        ssm = aws_client("ssm", resolved.aws_region, endpoint_url=resolved.aws_endpoint_url)
        resolved = Settings.from_env(with_secrets(os.environ, ssm))
    configure(resolved.log_level, "json")
    return resolved


@cache
def emf() -> EmfBuffer:
    return EmfBuffer(namespace=settings().metrics_namespace, service=settings().metrics_service)


@cache
def relay() -> Relay:
    from handlers.app.wiring import build_relay

    return build_relay(settings(), metrics_sink=emf())


def flush_metrics() -> None:
    """Write the invocation's figures as EMF lines (nothing when the relay was never built)."""
    if relay.cache_info().currsize:
        emf().flush()
