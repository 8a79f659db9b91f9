"""The API reference page at ``/docs``: Swagger UI from the ``swagger-ui-bundle`` package, no CDN.

| route | answer |
|---|---|
| ``GET /docs`` | a small page (no inline script or style) under a strict CSP |
| ``GET /docs/reference.js`` | the script that starts Swagger UI on the OpenAPI document |
| ``GET /docs/openapi-3.0.json`` | the OpenAPI document, restated as 3.0 for Swagger UI 4 |
| ``GET /docs/assets/{path}`` | Swagger UI's own files, as the package ships them |

The bundled Swagger UI (4.x) renders OpenAPI 3.0 only, so the page reads a 3.0 restatement of
``/openapi.json``: each ``type: [T, "null"]`` becomes ``type: T, nullable: true`` and each
``const`` a one-value ``enum``. ``/openapi.json`` itself stays 3.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from handlers.api.openapi import openapi_document

__all__ = ["ASSETS", "CONTENT_SECURITY_POLICY", "as_openapi_30", "reference_routes"]

ASSETS = "/docs/assets"
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "Cache-Control": "no-cache"}
_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>seedance-relay API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="{ASSETS}/favicon-32x32.png" type="image/png">
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="/docs/reference.js"></script></body></html>
"""
# validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
_SCRIPT = """window.ui = SwaggerUIBundle({
  url: "/docs/openapi-3.0.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
"""


def _restate(node: Any) -> Any:
    if isinstance(node, list):
        return [_restate(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    out = {key: _restate(value) for key, value in node.items()}
    kinds = out.get("type")
    if isinstance(kinds, list):
        present = [kind for kind in kinds if kind != "null"]
        if "null" in kinds:
            out["nullable"] = True
        if len(present) == 1:
            out["type"] = present[0]
        else:
            del out["type"]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    return out


def as_openapi_30(document: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` (OpenAPI 3.1, as this project writes it) restated as OpenAPI 3.0.3."""
    restated: dict[str, Any] = _restate(document)
    restated["openapi"] = "3.0.3"
    return restated


@cache
def _document_30() -> dict[str, Any]:
    return as_openapi_30(openapi_document())


def reference_routes() -> list[BaseRoute]:
    async def page(_: Request) -> Response:
        return Response(_PAGE, media_type="text/html; charset=utf-8", headers=_HEADERS)

    async def script(_: Request) -> Response:
        return Response(_SCRIPT, media_type="text/javascript; charset=utf-8", headers=_HEADERS)

    async def document(_: Request) -> Response:
        return JSONResponse(_document_30())

    return [Route("/docs", page, methods=["GET"]),
            Route("/docs/reference.js", script, methods=["GET"]),
            Route("/docs/openapi-3.0.json", document, methods=["GET"]),
            Mount(ASSETS, app=StaticFiles(directory=Path(str(swagger_ui_path))), name="reference-assets")]
