"""The HTTP API behind API Gateway HTTP API (payload 2.0) and a Lambda Function URL."""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["handler"]


@cache
def _adapter() -> Any:
    from mangum import Mangum

    from handlers.api import create_app
    from handlers.api.auth import ApiKeys
    from handlers.api.dashboard import dashboard_routes
    from handlers.lambdas._relay import relay, settings

    keys = ApiKeys(settings().api_keys, admins=settings().admin_keys, store=relay().keys)
    app = create_app(relay(), keys, extra_routes=dashboard_routes(relay(), keys))
    return Mangum(app, lifespan="off")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from handlers.lambdas._relay import flush_metrics

    try:
        response: dict[str, Any] = _adapter()(event, context)
    finally:
        flush_metrics()
    return response
