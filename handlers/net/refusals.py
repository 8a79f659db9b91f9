"""Starlette's own refusals (no route, a wrong method) as a sentence, in the wording each app chooses."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

__all__ = ["refusal_message"]


def refusal_message(request: Request, exc: HTTPException, *, no_route: str, bad_method: str) -> str:
    """``no_route`` for a 404, ``bad_method`` for a 405 (each formatted with ``method``, ``path`` and
    ``allowed``), the exception's own detail otherwise."""
    if exc.status_code not in (404, 405):
        return str(exc.detail)
    allowed = (exc.headers or {}).get("Allow", "none")
    template = no_route if exc.status_code == 404 else bad_method
    return template.format(method=request.method, path=request.url.path, allowed=allowed)
