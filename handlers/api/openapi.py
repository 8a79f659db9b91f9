"""The relay's OpenAPI 3.1 document, served at ``/openapi.json`` and drawn at ``/docs``.

Every route the relay serves is here, the dashboard's included. Every answer carries
``X-Request-Id``; every time is RFC 3339 in UTC with ``Z`` (:func:`handlers.domain.jobs.rfc3339`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from handlers import __version__
from handlers.api.openapi_storyboards import storyboard_paths, storyboard_schemas
from handlers.api.session import COOKIE_NAME
from handlers.domain.contract import ALL_MODELS, ASPECT_RATIOS, STANDARD_QUALITIES
from handlers.domain.jobrequest import CANCEL_AFTER_MAX
from handlers.domain.jobs import JobStatus
from handlers.domain.tenancy import TENANT_PATTERN, Role
from handlers.media.frames import FRAME_ROLES
from handlers.tooling.event_schemas import TIME_PATTERN

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_UPLOAD_TYPES = ("image/jpeg", "image/png", "image/webp", "video/mp4", "video/quicktime", "audio/wav", "audio/mpeg")
_TIME = {"type": "string", "format": "date-time", "pattern": TIME_PATTERN,
         "description": "RFC 3339, UTC, with Z and microseconds"}
_REQUEST_ID = {"X-Request-Id": {"description": "The request's id: the client's own X-Request-Id when it is "
                                               "1-128 characters of A-Za-z0-9._-, else a new one. Logged with "
                                               "every line of the request.",
                                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"}}}
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}]
_VIEWER: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]


def _response(description: str, schema: dict[str, Any] | None = None, media_type: str = "application/json",
              headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "headers": {**_REQUEST_ID, **(headers or {})}}
    if schema is not None:
        answer["content"] = {media_type: {"schema": schema}}
    return answer


def _errors(*statuses: int) -> dict[str, Any]:
    names = {400: "invalid request", 401: "missing or wrong credentials",
             402: "the tenant's budget cannot hold the job's estimate (`budget_exceeded`, with `remaining` and "
                  "`resets_at`)",
             403: "the key's role may not do this (`forbidden`), or a cross-site request was refused",
             404: "not found", 409: "idempotency key reused (`job_id` names the job)", 413: "body too large",
             415: "the bytes are not the declared type (`unsupported_media_type`, with `declared` and `detected`)",
             500: "internal error (no detail)", 502: "provider error",
             503: "the relay's storage is full (`storage_full`); retry later"}
    return {str(s): _response(names[s], _ERROR) for s in statuses}


def _path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _schemas() -> dict[str, Any]:
    url_list = {"type": "array", "items": {"type": "string", "format": "uri"}}
    return {
        "GenerationRequest": {
            "type": "object", "required": ["model", "prompt"],
            "properties": {
                "model": {"type": "string", "enum": list(ALL_MODELS)},
                "prompt": {"type": "string", "minLength": 1},
                "image_urls": {**url_list, "maxItems": 9},
                "video_urls": {**url_list, "maxItems": 3},
                "audio_urls": {**url_list, "maxItems": 3},
                "duration": {"type": "integer", "minimum": 4, "maximum": 15},
                "quality": {"type": "string", "enum": list(STANDARD_QUALITIES)},
                "aspect_ratio": {"type": "string", "enum": list(ASPECT_RATIOS)},
                "generate_audio": {"type": "boolean"},
                "content_filter": {"type": "boolean"},
                "model_params": {"type": "object"},
                "metadata": {"type": "object", "description": "carried into every event"},
                "cancel_after": {"type": "integer", "minimum": 1, "maximum": CANCEL_AFTER_MAX,
                                 "description": "seconds: a job that has not ended by then is cancelled (reason "
                                                "`deadline`), as `DELETE /v1/jobs/{job_id}` would"},
            },
        },
        "Output": {"type": "object", "properties": {
            "uri": {"type": "string", "description": "where the copy is stored: s3://… or file://…"},
            "key": {"type": "string"}, "size": {"type": "integer"},
            "sha256": {"type": "string"}, "content_type": {"type": "string"},
            "url": {"type": "string", "description": "the relay's route for it: /v1/jobs/{job_id}/outputs/{index}"},
            "media": {"type": ["object", "null"], "description": "what the stored video is: duration, width, height, "
                      "fps, frames, video_codec, has_audio, audio_codec, bitrate, size (null when it was not read)"},
            "checks": {"type": "array", "items": {"type": "object"},
                       "description": "the video against the request: {name, ok, expected, actual}"},
            "frames": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "picture role → where it is stored (poster, poster-thumbnail, last-frame, "
                                      "last-frame-thumbnail)"},
            "frame_urls": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "picture role → the relay's route for it: "
                                          "/v1/jobs/{job_id}/outputs/{index}/{role}"}}},
        "Job": {"type": "object", "required": ["id", "status"], "properties": {
            "id": {"type": "string"},
            "tenant": {"type": "string", "description": "the tenant of the key that created it"},
            "status": {"type": "string", "enum": [s.value for s in JobStatus]},
            "outcome": {"type": ["string", "null"]},
            "task_id": {"type": ["string", "null"]},
            "model": {"type": ["string", "null"]},
            "progress": {"type": "integer"},
            "created_at": _TIME, "updated_at": _TIME,
            "submitted_at": {**_TIME, "type": ["string", "null"]}, "finished_at": {**_TIME, "type": ["string", "null"]},
            "estimated_time": {"type": ["integer", "null"]},
            "credits_reserved": {"type": ["number", "null"]},
            "credits": {"type": "object", "description": "estimated by the price table, held against the budget, "
                        "reserved and used as EvoLink reported (docs/costs.md)", "properties": {
                            name: {"type": ["number", "null"]} for name in ("estimated", "held", "reserved", "used")}},
            "queue_position": {"type": "integer", "minimum": 1,
                               "description": "only while queued: its place in the queue (1: next)"},
            "error": {"type": ["object", "null"]},
            "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/Output"}},
            "event_ids": {"type": "array", "items": {"type": "string"}},
            "metadata": {"type": "object"},
            "idempotency_key": {"type": ["string", "null"]},
            "attempts": {"type": "array", "description": "every EvoLink task of the job, oldest first: each one that "
                         "failed with a code that says try again (`task_id`, `code`, `message`, `failed_at`), then "
                         "the current one (`task_id`)", "items": {"type": "object", "required": ["task_id"]}},
            "deadline_at": {**_TIME, "type": ["string", "null"],
                            "description": "when it is cancelled if it has not ended (`cancel_after`)"},
            "at_risk_at": {**_TIME, "type": ["string", "null"],
                           "description": "when `job.at_risk` went out: its completed result was not copied in time"},
            "depends_on": {"type": "array", "items": {"type": "string"},
                           "description": "the jobs whose outputs it names (`job://`) and waits for while `waiting`"},
            "dependents": {"type": "array", "items": {"type": "string"},
                           "description": "the jobs that waited for this one (woken by its event)"},
            "storyboard": {"type": ["string", "null"], "description": "the storyboard it is part of"},
            "shot": {"type": ["string", "null"],
                     "description": "its shot in that storyboard (null for the storyboard's own job)"}}},
        "Upload": {"type": "object", "properties": {
            "key": {"type": "string"}, "url": {"type": "string"}, "expires_at": {"type": "integer"},
            "size": {"type": "integer"}, "sha256": {"type": "string"}, "content_type": {"type": "string"},
            "kind": {"type": "string", "enum": ["image", "video", "audio"]}}},
        "Estimate": {"type": "object", "required": ["credits", "breakdown", "assumptions"], "properties": {
            "credits": {"type": "number", "description": "what EvoLink should bill, by the relay's price table"},
            "breakdown": {"type": "array", "items": {"type": "object", "properties": {
                "what": {"type": "string"},
                "seconds": {"type": ["number", "null"], "description": "seconds billed (null for a surcharge)"},
                "rate": {"type": ["number", "null"], "description": "credits per second (null for a surcharge)"},
                "credits": {"type": "number"}}}},
            "assumptions": {"type": "array", "items": {"type": "string"},
                            "description": "what the estimate had to assume, such as a reference video that "
                                           "could not be read, billed at the most the rules allow"}}},
        **_key_schemas(),
        "Usage": {"type": "object", "properties": {"usage": {"type": "array", "items": {
            "type": "object", "properties": {
                "tenant": {"type": "string"}, "period": {"type": "string", "description": "day:YYYY-MM-DD or "
                                                          "month:YYYY-MM (UTC)"},
                "budget": {"type": ["object", "null"], "properties": {
                    "credits": {"type": "number"}, "per": {"type": "string", "enum": ["day", "month"]}}},
                "held": {"type": "number"}, "spent": {"type": "number"},
                "remaining": {"type": ["number", "null"]}, "jobs": {"type": "integer"},
                "resets_at": _TIME}}}}},
        "JobPage": {"type": "object", "properties": {
            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
            "next_cursor": {"type": ["string", "null"]}}},
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"},
                "declared": {"type": "string", "description": "415: the Content-Type sent"},
                "detected": {"type": ["string", "null"], "description": "415: the type the bytes show"},
                "status": {"type": "string", "description": "409 `job_ended`: the job's status"},
                "outcome": {"type": ["string", "null"], "description": "409 `job_ended`: its recorded outcome"},
                "job_id": {"type": "string", "description": "409 `idempotency_key_reused`: the job that used the key"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "field": {"type": "string"}, "code": {"type": "string"},
                    "message": {"type": "string"}}}}}}}},
    }


def _key_schemas() -> dict[str, Any]:
    tenant = {"type": "string", "pattern": TENANT_PATTERN.pattern, "description": "1-63 of a-z 0-9 _ -"}
    role = {"type": "string", "enum": [r.value for r in Role]}
    record = {"id": {"type": "string", "pattern": "^key_[0-9a-f]{12}$"}, "tenant": tenant, "role": role,
              "created_at": _TIME, "revoked_at": {**_TIME, "type": ["string", "null"]}}
    required = ["id", "tenant", "role", "created_at", "revoked_at"]
    return {
        "KeyRequest": {"type": "object", "required": ["tenant"], "additionalProperties": False, "properties": {
            "tenant": tenant, "role": {**role, "default": Role.SUBMITTER.value,
                                       "description": "`submitter` when not given"}}},
        "ApiKey": {"type": "object", "required": required, "properties": record},
        "NewApiKey": {"type": "object", "required": [*required, "key"], "properties": {
            **record, "key": {"type": "string", "description": "the key itself: keep it, it is never shown again"}}},
        "KeyList": {"type": "object", "required": ["keys"], "properties": {
            "keys": {"type": "array", "items": {"$ref": "#/components/schemas/ApiKey"}}}},
    }


def _job_paths() -> dict[str, Any]:
    job = {"$ref": "#/components/schemas/Job"}
    replayed = {"Idempotent-Replayed": {"description": "`true` when the job already existed: a repeat of the "
                                                       "same Idempotency-Key (or of the same request without one)",
                                        "schema": {"type": "string", "enum": ["true"]}}}
    return {
        "/v1/jobs": {
            "post": {"summary": "Submit a generation job", "operationId": "createJob", "tags": ["jobs"],
                     "security": _SECURED,
                     "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                     "schema": {"type": "string", "maxLength": 255}}],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/GenerationRequest"}}}},
                     "responses": {"202": _response("the job (new or repeated)", job, headers=replayed),
                                   "422": _response("the provider rejected the job", job, headers=replayed),
                                   **_errors(400, 401, 402, 403, 409, 413, 500, 503)}},
            "get": {"summary": "List jobs, newest first", "operationId": "listJobs", "tags": ["jobs"],
                    "security": _SECURED,
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {
                            "type": "string", "enum": [s.value for s in JobStatus]}},
                        {"name": "limit", "in": "query", "schema": {
                            "type": "integer", "minimum": 1, "maximum": 100}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                        {"name": "tenant", "in": "query", "description": "admin keys only: one tenant's jobs",
                         "schema": {"type": "string"}}],
                    "responses": {"200": _response("a page of jobs", {"$ref": "#/components/schemas/JobPage"}),
                                  **_errors(400, 401, 500)}}},
        "/v1/estimates": {"post": {
            "summary": "What a job would cost, in credits, with nothing created (docs/costs.md)",
            "operationId": "createEstimate", "tags": ["jobs"], "security": _SECURED,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/GenerationRequest"}}}},
            "responses": {"200": _response("the estimate", {"$ref": "#/components/schemas/Estimate"}),
                          **_errors(400, 401, 413, 500)}}},
        "/v1/usage": {"get": {
            "summary": "Credits held and spent in the current period, against the budget: the caller's tenant "
                       "(an admin: every tenant)", "operationId": "getUsage", "tags": ["jobs"], "security": _SECURED,
            "responses": {"200": _response("usage by tenant", {"$ref": "#/components/schemas/Usage"}),
                          **_errors(401, 500)}}},
        "/v1/jobs/{job_id}": {"get": {
            "summary": "One job", "operationId": "getJob", "tags": ["jobs"], "security": _SECURED,
            "parameters": [_path_param("job_id")],
            "responses": {"200": _response("the job", job), **_errors(401, 404, 500)}},
            "delete": _cancel_operation(job)},
        "/v1/jobs/{job_id}/outputs/{index}": {"get": {
            "summary": "A stored output of a job (its `url`); Range requests served",
            "operationId": "getJobOutput", "tags": ["jobs"], "security": _VIEWER,
            "parameters": [_path_param("job_id"), _path_param("index", {"type": "integer", "minimum": 0})],
            "responses": {"200": _response("the file", {"type": "string", "format": "binary"}, "video/mp4"),
                          "206": _response("the requested range", {"type": "string", "format": "binary"},
                                           "video/mp4"),
                          "307": _response("on S3: a short-lived presigned URL in Location"),
                          **_errors(401, 404, 500)}}},
        "/v1/jobs/{job_id}/outputs/{index}/{role}": {"get": {
            "summary": "A stored picture of an output (its `frame_urls`): poster, last frame or their thumbnails",
            "operationId": "getJobOutputPicture", "tags": ["jobs"], "security": _VIEWER,
            "parameters": [_path_param("job_id"), _path_param("index", {"type": "integer", "minimum": 0}),
                           _path_param("role", {"type": "string", "enum": list(FRAME_ROLES)})],
            "responses": {"200": _response("the JPEG", {"type": "string", "format": "binary"}, "image/jpeg"),
                          "307": _response("on S3: a short-lived presigned URL in Location"),
                          **_errors(401, 404, 500)}}},
        "/v1/callbacks/evolink/{job_id}": {"post": {
            "summary": "EvoLink's task callback (capability token in the URL)",
            "operationId": "evolinkCallback", "tags": ["callbacks"],
            "parameters": [_path_param("job_id"),
                           {"name": "token", "in": "query", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"202": _response("queued for ingestion", {"type": "object"}),
                          **_errors(400, 401, 413, 500, 503)}}},
        "/v1/uploads": {"post": {
            "summary": "Upload a local reference file; answers a short-lived URL for the provider",
            "operationId": "createUpload", "tags": ["uploads"], "security": _SECURED,
            "requestBody": {"required": True, "content": {ct: {"schema": {"type": "string", "format": "binary"}}
                                                          for ct in _UPLOAD_TYPES}},
            "responses": {"201": _response("the stored upload and its signed URL",
                                           {"$ref": "#/components/schemas/Upload"}),
                          **_errors(400, 401, 413, 415, 500, 503)}}},
        "/v1/uploads/{name}": {"get": {
            "summary": "An uploaded file, through its signed URL", "operationId": "getUpload", "tags": ["uploads"],
            "parameters": [_path_param("name"),
                           {"name": "expires", "in": "query", "required": True, "schema": {"type": "string"}},
                           {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _response("the file"), **_errors(404, 500)}}},
    }


def _cancel_operation(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": "Cancel a job that has not ended (a submitter or admin key)", "operationId": "cancelJob",
        "tags": ["jobs"], "security": _SECURED, "parameters": [_path_param("job_id")],
        "description": "A job that is `accepted`, `queued` or `waiting` is cancelled at once. A `submitted` or "
                       "`processing` job is cancelled by abandoning its task: EvoLink has no cancel call, so the "
                       "task runs on there and **EvoLink may still bill it**. The job becomes `cancelled` (its "
                       "error's `reason` is `caller`) and publishes one `job.cancelled` event; a callback that "
                       "comes later is recorded, never stored. Jobs waiting for it fail with `dependency_failed`.",
        "responses": {"200": _response("the job, now cancelled", job), **_errors(401, 403, 404),
                      "409": _response("`job_ended`: the job has ended, or its outcome is recorded (`status` and "
                                       "`outcome` say which); nothing changed", _ERROR),
                      **_errors(500)}}


def _key_paths() -> dict[str, Any]:
    key = {"$ref": "#/components/schemas/ApiKey"}
    forbidden = {"403": _response("`forbidden`: not an admin key", _ERROR)}
    return {
        "/v1/keys": {
            "post": {"summary": "Make an API key (admin only); the key is in this answer and nowhere else",
                     "operationId": "createKey", "tags": ["keys"], "security": _SECURED,
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/KeyRequest"}}}},
                     "responses": {"201": _response("the new key, with the key itself (shown once)",
                                                    {"$ref": "#/components/schemas/NewApiKey"}),
                                   **_errors(400, 401), **forbidden, **_errors(413, 500),
                                   "409": _response("`conflict`: the key store was busy; try again", _ERROR)}},
            "get": {"summary": "Every key made at run time, oldest first (admin only; never the keys)",
                    "operationId": "listKeys", "tags": ["keys"], "security": _SECURED,
                    "responses": {"200": _response("the keys", {"$ref": "#/components/schemas/KeyList"}),
                                  **_errors(401), **forbidden, **_errors(500)}}},
        "/v1/keys/{key_id}": {"delete": {
            "summary": "Revoke a key at once (admin only); revoking it again changes nothing",
            "operationId": "revokeKey", "tags": ["keys"], "security": _SECURED, "parameters": [_path_param("key_id")],
            "responses": {"200": _response("the revoked key", key), **_errors(401), **forbidden,
                          **_errors(404, 500)}}},
    }


def _dashboard_paths() -> dict[str, Any]:
    html = {"type": "string"}
    redirect = _response("to the dashboard (Location: /)")
    return {
        "/": {"get": {"summary": "The dashboard page (static; it reads /dashboard/summary)",
                      "operationId": "dashboard", "tags": ["dashboard"],
                      "responses": {"200": _response("the page", html, "text/html")}}},
        "/dashboard/static/{name}": {"get": {
            "summary": "The dashboard's script, stylesheet and icon", "operationId": "dashboardAsset",
            "tags": ["dashboard"], "parameters": [_path_param("name")],
            "responses": {"200": _response("the file"), **_errors(404)}}},
        "/dashboard/summary": {"get": {
            "summary": "Recent jobs, counts by status and queue depths", "operationId": "dashboardSummary",
            "tags": ["dashboard"], "security": _VIEWER,
            "parameters": [{"name": "limit", "in": "query", "schema": {
                "type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "status", "in": "query", "schema": {
                    "type": "string", "enum": [s.value for s in JobStatus]}}],
            "responses": {"200": _response("the summary", {"type": "object"}), **_errors(400, 401, 500)}}},
        "/dashboard/jobs/{job_id}": {"get": {
            "summary": "One job's details for the dashboard: request, metadata, outputs, error, events",
            "operationId": "dashboardJob", "tags": ["dashboard"], "security": _VIEWER,
            "parameters": [_path_param("job_id")],
            "responses": {"200": _response("the job's details", {"type": "object"}), **_errors(401, 404, 500)}}},
        "/session": {"post": {
            "summary": "Sign in to the dashboard with an API key (same origin only)", "operationId": "signIn",
            "tags": ["dashboard"],
            "requestBody": {"required": True, "content": {
                ct: {"schema": {"type": "object", "required": ["api_key"],
                                "properties": {"api_key": {"type": "string"}}}}
                for ct in ("application/x-www-form-urlencoded", "application/json")}},
            "responses": {"303": redirect, **_errors(401, 403, 413)}}},
        "/session/logout": {"post": {
            "summary": "Sign out: the session is revoked on the server", "operationId": "signOut",
            "tags": ["dashboard"], "responses": {"303": redirect, **_errors(403)}}},
    }


def _service_paths() -> dict[str, Any]:
    return {
        "/healthz": {"get": {"summary": "Liveness", "operationId": "healthz", "tags": ["service"],
                             "responses": {"200": _response("ok", {"type": "object"})}}},
        "/openapi.json": {"get": {"summary": "This document (OpenAPI 3.1)", "operationId": "openapi",
                                  "tags": ["service"], "responses": {"200": _response("the document",
                                                                                      {"type": "object"})}}},
        "/docs": {"get": {"summary": "This reference as a page (Swagger UI, served by the relay)",
                          "operationId": "reference", "tags": ["service"],
                          "responses": {"200": _response("the page", {"type": "string"}, "text/html")}}},
        "/metrics": {"get": {"summary": "The relay's metrics in the Prometheus text format (docs/metrics.md)",
                             "operationId": "metrics", "tags": ["service"], "security": [{"bearer": []}],
                             "responses": {"200": _response("the metrics", {"type": "string"},
                                                            "text/plain; version=0.0.4"),
                                           **_errors(401)}}},
    }


def _paths() -> dict[str, Any]:
    return {**_job_paths(), **storyboard_paths(), **_key_paths(), **_dashboard_paths(), **_service_paths()}


@cache
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "seedance-relay", "version": __version__,
                 "description": "Seedance 2.0 jobs through EvoLink, with verified callbacks, "
                                "durable copies and CloudEvents."},
        "paths": _paths(),
        "components": {"schemas": {**_schemas(), **storyboard_schemas()},
                       "securitySchemes": {
                           "bearer": {"type": "http", "scheme": "bearer"},
                           "session": {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME,
                                       "description": "the dashboard's session cookie (GET and HEAD only)"}}},
    }
