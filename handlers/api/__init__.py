"""The relay's HTTP API (Starlette): jobs, callbacks, uploads, health, its OpenAPI document and ``/docs``."""

from handlers.api.app import create_app

__all__ = ["create_app"]
