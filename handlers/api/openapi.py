"""The relay's OpenAPI 3.1 document, served at ``/openapi.json``."""

from __future__ import annotations

from functools import cache
from typing import Any

from handlers import __version__
from handlers.contract import ALL_MODELS, ASPECT_RATIOS, STANDARD_QUALITIES
from handlers.jobs import JobStatus

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_UPLOAD_TYPES = ("image/jpeg", "image/png", "image/webp", "video/mp4", "video/quicktime", "audio/wav", "audio/mpeg")


def _response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    names = {400: "invalid request", 401: "missing or wrong credentials", 404: "not found",
             409: "idempotency key reused", 413: "body too large", 500: "internal error",
             502: "provider error"}
    return {str(s): _response(names[s], _ERROR) for s in statuses}


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
            },
        },
        "Output": {"type": "object", "properties": {
            "uri": {"type": "string"}, "key": {"type": "string"}, "size": {"type": "integer"},
            "sha256": {"type": "string"}, "content_type": {"type": "string"}}},
        "Job": {"type": "object", "required": ["id", "status"], "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in JobStatus]},
            "outcome": {"type": ["string", "null"]},
            "task_id": {"type": ["string", "null"]},
            "model": {"type": ["string", "null"]},
            "progress": {"type": "integer"},
            "created_at": {"type": "number"}, "updated_at": {"type": "number"},
            "submitted_at": {"type": ["number", "null"]}, "finished_at": {"type": ["number", "null"]},
            "estimated_time": {"type": ["integer", "null"]},
            "credits_reserved": {"type": ["number", "null"]},
            "error": {"type": ["object", "null"]},
            "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/Output"}},
            "event_ids": {"type": "array", "items": {"type": "string"}},
            "metadata": {"type": "object"},
            "idempotency_key": {"type": ["string", "null"]}}},
        "Upload": {"type": "object", "properties": {
            "key": {"type": "string"}, "url": {"type": "string"}, "expires_at": {"type": "integer"},
            "size": {"type": "integer"}, "sha256": {"type": "string"}, "content_type": {"type": "string"},
            "kind": {"type": "string", "enum": ["image", "video", "audio"]}}},
        "JobPage": {"type": "object", "properties": {
            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
            "next_cursor": {"type": ["string", "null"]}}},
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "field": {"type": "string"}, "code": {"type": "string"},
                    "message": {"type": "string"}}}}}}}},
    }


def _paths() -> dict[str, Any]:
    job = {"$ref": "#/components/schemas/Job"}
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "/v1/jobs": {
            "post": {"summary": "Submit a generation job", "operationId": "createJob",
                     "security": secured,
                     "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                     "schema": {"type": "string", "maxLength": 255}}],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/GenerationRequest"}}}},
                     "responses": {"202": _response("the job (new or repeated)", job),
                                   "422": _response("the provider rejected the job", job),
                                   **_errors(400, 401, 409, 413, 500)}},
            "get": {"summary": "List jobs, newest first", "operationId": "listJobs",
                    "security": secured,
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {
                            "type": "string", "enum": [s.value for s in JobStatus]}},
                        {"name": "limit", "in": "query", "schema": {
                            "type": "integer", "minimum": 1, "maximum": 100}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": _response("a page of jobs", {"$ref": "#/components/schemas/JobPage"}),
                                  **_errors(400, 401, 500)}}},
        "/v1/jobs/{job_id}": {"get": {
            "summary": "One job", "operationId": "getJob", "security": secured,
            "parameters": [{"name": "job_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _response("the job", job), **_errors(401, 404, 500)}}},
        "/v1/callbacks/evolink/{job_id}": {"post": {
            "summary": "EvoLink's task callback (capability token in the URL)",
            "operationId": "evolinkCallback",
            "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "token", "in": "query", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"202": _response("queued for ingestion", {"type": "object"}),
                          **_errors(400, 401, 413, 500)}}},
        "/v1/uploads": {"post": {
            "summary": "Upload a local reference file; answers a short-lived URL for the provider",
            "operationId": "createUpload", "security": secured,
            "requestBody": {"required": True, "content": {ct: {"schema": {"type": "string", "format": "binary"}}
                                                          for ct in _UPLOAD_TYPES}},
            "responses": {"201": _response("the stored upload and its signed URL",
                                           {"$ref": "#/components/schemas/Upload"}),
                          **_errors(400, 401, 413, 500)}}},
        "/v1/uploads/{name}": {"get": {
            "summary": "An uploaded file, through its signed URL", "operationId": "getUpload",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "expires", "in": "query", "required": True, "schema": {"type": "string"}},
                           {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the file"}, **_errors(404, 500)}}},
        "/healthz": {"get": {"summary": "Liveness", "operationId": "healthz",
                             "responses": {"200": _response("ok", {"type": "object"})}}},
    }


@cache
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "seedance-relay", "version": __version__,
                 "description": "Seedance 2.0 jobs through EvoLink, with verified callbacks, "
                                "durable copies and CloudEvents."},
        "paths": _paths(),
        "components": {"schemas": _schemas(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
