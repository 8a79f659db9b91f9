"""The storyboard routes and the signed job-file route in the OpenAPI document (:mod:`handlers.api.openapi`)."""

from __future__ import annotations

from typing import Any

from handlers.domain.storyboards import MAX_SHOTS

__all__ = ["storyboard_paths", "storyboard_schemas"]

_SECURED: list[dict[str, list[str]]] = [{"bearer": []}]
_ERROR = {"$ref": "#/components/schemas/Error"}
_STORYBOARD = {"$ref": "#/components/schemas/Storyboard"}
_NAMES = {400: "invalid storyboard: every problem, each shot's by its path (`shots[1].request.duration`)",
          401: "missing or wrong credentials", 402: "the tenant's budget cannot hold the shots' estimate",
          403: "the key's role may not do this", 404: "no such storyboard (or another tenant's), or no such shot",
          409: "another rerun made the same revision first (`storyboard_changed`)", 413: "body too large"}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = {"application/json": {"schema": schema}}
    return answer


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): _answer(_NAMES[s], _ERROR) for s in statuses}


def _id_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def storyboard_paths() -> dict[str, Any]:
    body = {"required": True, "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/StoryboardRequest"}}}}
    return {
        "/v1/storyboards": {"post": {
            "summary": "Create a storyboard: every shot is submitted at once; shots naming earlier shots wait",
            "operationId": "createStoryboard", "tags": ["storyboards"], "security": _SECURED,
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "maxLength": 200}}],
            "requestBody": body,
            "responses": {"202": _answer("the storyboard (new or repeated)", _STORYBOARD),
                          **_errors(400, 401, 402, 403, 409, 413)}}},
        "/v1/storyboards/estimates": {"post": {
            "summary": "What a storyboard's shots would cost, nothing created", "operationId": "estimateStoryboard",
            "tags": ["storyboards"], "security": _SECURED, "requestBody": body,
            "responses": {"200": _answer("the credits of each shot and their sum", {
                "type": "object", "properties": {"credits": {"type": "number"}, "shots": {"type": "array"}}}),
                **_errors(400, 401, 403, 413)}}},
        "/v1/storyboards/{storyboard_id}": {"get": {
            "summary": "A storyboard's newest revision: each shot's job and the joined output",
            "operationId": "getStoryboard", "tags": ["storyboards"], "security": _SECURED,
            "parameters": [_id_param("storyboard_id")],
            "responses": {"200": _answer("the storyboard", _STORYBOARD), **_errors(401, 404)}}},
        "/v1/storyboards/{storyboard_id}/shots/{shot}/rerun": {"post": {
            "summary": "Rerun one shot: new jobs for it and every shot naming it, then join again",
            "operationId": "rerunShot", "tags": ["storyboards"], "security": _SECURED,
            "parameters": [_id_param("storyboard_id"), _id_param("shot")],
            "responses": {"202": _answer("the storyboard's new revision", _STORYBOARD),
                          **_errors(401, 402, 403, 404, 409)}}},
        "/v1/job-files/{name}": {"get": {
            "summary": "A job's stored file behind a signed, short-lived URL (what EvoLink fetches for a job:// "
                       "reference when the store makes no presigned URLs)",
            "operationId": "getJobFile", "tags": ["jobs"], "security": [],
            "parameters": [_id_param("name"),
                           {"name": "expires", "in": "query", "required": True, "schema": {"type": "integer"}},
                           {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _answer("the file (Range-aware)"),
                          "404": _answer("no such file, or the link is forged or expired", _ERROR)}}},
    }


def storyboard_schemas() -> dict[str, Any]:
    shot = {"type": "object", "required": ["id", "request"], "properties": {
        "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
        "request": {"$ref": "#/components/schemas/GenerationRequest",
                    "description": "a job request; image_urls and video_urls may name earlier shots as "
                                   "shot://SHOT_ID/output-0, shot://SHOT_ID/poster or shot://SHOT_ID/last-frame"},
        "metadata": {"type": "object"}}}
    shot_view = {"type": "object", "properties": {
        "id": {"type": "string"}, "job_id": {"type": "string"}, "status": {"type": "string"},
        "progress": {"type": "integer"}, "credits": {"type": "object"}, "error": {"type": ["object", "null"]},
        "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/Output"}},
        "depends_on": {"type": "array", "items": {"type": "string"}}}}
    return {
        "StoryboardRequest": {"type": "object", "required": ["shots"], "properties": {
            "shots": {"type": "array", "minItems": 1, "maxItems": MAX_SHOTS, "items": shot},
            "assemble": {"type": "boolean", "description": "join the shots' outputs, in order, into one MP4"},
            "metadata": {"type": "object", "description": "carried into the storyboard's events"}}},
        "Storyboard": {"type": "object", "properties": {
            "id": {"type": "string", "pattern": "^sb_[0-9a-f]{26}$"},
            "revision": {"type": "integer", "minimum": 1, "description": "1, then one more per rerun"},
            "status": {"type": "string", "enum": ["running", "assembling", "completing", "completed", "failed"],
                       "description": "running: shots not all published; assembling: joining them; completing: "
                                      "done, its event going out; completed: its event is out; failed: a shot or "
                                      "the join failed (error says which)"},
            "job_id": {"type": "string", "description": "the revision's own job, which waits for every shot"},
            "tenant": {"type": "string"}, "assemble": {"type": "boolean"},
            "rerun": {"type": ["string", "null"], "description": "the shot this revision reran"},
            "metadata": {"type": "object"}, "shots": {"type": "array", "items": shot_view},
            "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/Output"},
                        "description": "the joined video (with assemble), with its media facts and pictures"},
            "error": {"type": ["object", "null"], "description": "why it failed; `shot` names the failed shot"},
            "event_ids": {"type": "array", "items": {"type": "string"}},
            "credits": {"type": "object", "description": "the sum of the shots' estimated and used credits"},
            "created_at": {"type": "string"}, "finished_at": {"type": ["string", "null"]}}},
    }
