"""The relay's HTTP API (Starlette): jobs, callbacks, health and its OpenAPI document."""

from handlers.api.app import create_app

__all__ = ["create_app"]
