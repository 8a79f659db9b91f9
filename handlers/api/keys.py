"""``POST /v1/keys``, ``GET /v1/keys`` and ``DELETE /v1/keys/{key_id}``: API keys, for admins only.

A created key is in the answer to its ``POST`` and nowhere else, ever (the store keeps its sha256).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.api.responses import answering, read_limited
from handlers.base.errors import Forbidden, InvalidRequest, Violation
from handlers.base.jsonbody import parse_object
from handlers.domain.tenancy import Principal, Role
from handlers.ports import KeyStore
from handlers.usecases.keys import create_key, key_record, list_keys, revoke_key

__all__ = ["KEY_BODY_MAX", "Authenticates", "key_routes"]

KEY_BODY_MAX = 4096
_FIELDS = ("tenant", "role")
_NO_STORE = {"Cache-Control": "no-store"}


class Authenticates(Protocol):
    """Who is calling: a principal, or ``Unauthorized`` (answered 401)."""

    def principal(self, request: HTTPConnection) -> Principal:
        ...


def key_routes(relay_keys: KeyStore, auth: Authenticates, clock: Callable[[], float]) -> list[Route]:
    """The key management routes on ``relay_keys``; every one needs an admin key (else 403)."""

    def admin(request: Request) -> Principal:
        principal = auth.principal(request)
        if not principal.admin:
            raise Forbidden("this needs an admin key")
        return principal

    async def create(request: Request) -> Response:
        by = admin(request).key_id
        tenant, role = _key_request(parse_object(await read_limited(request, KEY_BODY_MAX), strict=True))
        key, plain = await run_in_threadpool(create_key, relay_keys, tenant, role, clock(), by=by)
        return JSONResponse({**key_record(key), "key": plain}, status_code=201, headers=_NO_STORE)

    async def listing(request: Request) -> Response:
        admin(request)
        keys = await run_in_threadpool(list_keys, relay_keys)
        return JSONResponse({"keys": [key_record(key) for key in keys]}, headers=_NO_STORE)

    async def revoke(request: Request) -> Response:
        by, key_id = admin(request).key_id, request.path_params["key_id"]
        key = await run_in_threadpool(revoke_key, relay_keys, key_id, clock(), by=by)
        return JSONResponse(key_record(key), headers=_NO_STORE)

    return [Route("/v1/keys", answering(create), methods=["POST"]),
            Route("/v1/keys", answering(listing), methods=["GET"]),
            Route("/v1/keys/{key_id}", answering(revoke), methods=["DELETE"])]


def _key_request(body: Mapping[str, Any]) -> tuple[str, str]:
    """``tenant`` (required) and ``role`` (``submitter`` unless given), both strings; no other field."""
    problems = [Violation(name, "unknown_field", f"{name!r} is not a field of a key; the fields are tenant and role")
                for name in body if name not in _FIELDS]
    if "tenant" not in body:
        problems.append(Violation("tenant", "required", "tenant is required"))
    tenant, role = body.get("tenant", ""), body.get("role", Role.SUBMITTER.value)
    problems += [Violation(name, "invalid_type", f"{name} must be a string")
                 for name, value in (("tenant", tenant), ("role", role)) if not isinstance(value, str)]
    if problems:
        raise InvalidRequest(problems)
    return tenant, role
