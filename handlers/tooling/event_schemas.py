"""JSON Schemas (draft 2020-12) of the relay's CloudEvents, one per event type.

Every time is RFC 3339 in UTC with ``Z`` and six fractional digits (:data:`TIME_PATTERN`).
Each schema pins the envelope :func:`handlers.domain.events.build_event` writes (structured JSON
mode, no extension attributes) and the exact ``data`` object of its outcome. They are
written to ``docs/schemas/<type>.json`` by :mod:`handlers.tooling.docgen`; consumers may validate
events against them. Every schema is self-contained (no ``$ref``).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from handlers.domain.contract import ALL_MODELS, DURATION_MAX, DURATION_MIN
from handlers.domain.events import AT_RISK, EVENT_TYPES, SOURCE, TYPE_PREFIX
from handlers.media.assemble import REENCODE, REMUX
from handlers.media.checks import CHECK_NAMES
from handlers.media.facts import MediaFacts
from handlers.media.frames import FRAME_ROLES as _FRAME_ROLES
from handlers.tooling.storyboard_schemas import STORYBOARD_EVENT_TYPES, storyboard_event_schema

__all__ = ["DRAFT", "TIME_PATTERN", "all_event_schemas", "event_schema"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_JOB_ID = {"type": "string", "pattern": "^job_[0-9a-f]{26}$"}
TIME_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z$"
_TIME = {"type": "string", "format": "date-time", "pattern": TIME_PATTERN}
_MEDIA_FIELDS = tuple(field.name for field in fields(MediaFacts))

_WHEN = {
    "completed": "EvoLink completed the task and every result is copied into the relay's storage.",
    "failed": "EvoLink failed the task, or its result could not be copied (expired or unsafe link, "
              "no results, task not found, not a playable MP4), or its video failed a check with "
              "RELAY_OUTPUT_CHECKS=strict.",
    "cancelled": "Its caller cancelled it (DELETE /v1/jobs/{id}; error.reason caller), its cancel_after deadline "
                 "passed (error.reason deadline), or EvoLink cancelled the task (status `cancelled`, or `failed` "
                 "with `request_cancelled`).",
    "expired": "No final answer arrived within RELAY_EXPIRE_AFTER seconds of the job's creation.",
    "rejected": "EvoLink refused the create call (HTTP 4xx other than 429), or a request from the "
                "requests queue broke a validation rule.",
    "at_risk": "Not terminal, at most once per job: EvoLink completed the task RELAY_AT_RISK_AFTER seconds ago "
               "(20 h by default) and its result is still not copied; its URLs expire 24 h after completion, "
               "and the job then fails with result_expired.",
}


def _output() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "One stored copy of a result video, with what it is and its pictures.",
        "required": ["uri", "key", "size", "sha256", "content_type", "media", "checks", "frames"],
        "additionalProperties": False,
        "properties": {
            "uri": {"type": "string", "format": "uri",
                    "description": "Where the copy is: s3://bucket/key on AWS, file:///… locally."},
            "key": {"type": "string", "pattern": "^jobs/job_[0-9a-f]{26}/output-[0-9]+\\.mp4$",
                    "description": "The object key in the blob store."},
            "size": {"type": "integer", "minimum": 0, "description": "Bytes stored."},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                       "description": "Hex sha256 of the stored bytes."},
            "content_type": {"type": "string", "minLength": 1,
                             "description": "As the result host sent it; usually video/mp4."},
            "media": _media(),
            "checks": {"type": "array", "items": _check(),
                       "description": "The video against the request (empty when it was not read). A failed "
                                      "check fails the job only with RELAY_OUTPUT_CHECKS=strict."},
            "frames": {"type": "object", "propertyNames": {"enum": list(_FRAME_ROLES)},
                       "additionalProperties": {"type": "string", "format": "uri"},
                       "description": "Where each stored picture is (JPEG, beside the video): the poster (a third "
                                      "of the way in) and the last frame at the video's size, and a 320 px wide "
                                      "thumbnail of each. Empty when the video was not read."},
            "frame_urls": {"type": "object", "propertyNames": {"enum": list(_FRAME_ROLES)},
                           "additionalProperties": {"type": "string", "format": "uri"},
                           "description": "Present where the store presigns (S3): a URL anyone may GET for each "
                                          "picture, until frame_urls_expire_at."},
            "frame_urls_expire_at": {**_TIME, "description": "When the frame_urls stop working (UTC)."},
        },
    }


def _media() -> dict[str, Any]:
    number = {"type": "number", "minimum": 0}
    whole = {"type": "integer", "minimum": 0}
    return {
        "type": ["object", "null"],
        "description": "What the stored video is, read from its container index; null when it was not read "
                       "(a relay without PyAV).",
        "required": list(_MEDIA_FIELDS),
        "additionalProperties": False,
        "properties": {
            "duration": {**number, "description": "Seconds, of the video stream."},
            "width": {**whole, "description": "Pixels."},
            "height": {**whole, "description": "Pixels."},
            "fps": {**number, "description": "Frames per second."},
            "frames": {**whole, "description": "Video frames."},
            "video_codec": {"type": "string", "description": "FFmpeg's name, e.g. h264."},
            "has_audio": {"type": "boolean", "description": "Whether the file has an audio stream."},
            "audio_codec": {"type": ["string", "null"], "description": "FFmpeg's name, e.g. aac; null without audio."},
            "bitrate": {**whole, "description": "Mean bits per second of the whole file."},
            "size": {**whole, "description": "Bytes."},
            "assembly": {"type": "object", "required": ["method", "reason", "parts"], "additionalProperties": False,
                         "description": "Only on a video the relay joined from several (a storyboard's): how.",
                         "properties": {
                             "method": {"enum": [REMUX, REENCODE],
                                        "description": "remux: packets copied as they are; reencode: decoded and "
                                                       "encoded again (H.264/AAC) because the parts differ."},
                             "reason": {"type": ["string", "null"], "description": "Why it was re-encoded."},
                             "parts": {**whole, "description": "How many videos were joined."}}},
        },
    }


def _check() -> dict[str, Any]:
    value = {"type": ["number", "string", "boolean"]}
    return {
        "type": "object",
        "required": ["name", "ok", "expected", "actual"],
        "additionalProperties": False,
        "properties": {
            "name": {"enum": list(CHECK_NAMES),
                     "description": "duration (seconds, within one frame or 0.1 s), resolution (the quality "
                                    "against WIDTHxHEIGHT, pixels within 10 %), aspect_ratio (within 2 %; not "
                                    "checked for adaptive), audio (checked when generate_audio is true)."},
            "ok": {"type": "boolean"},
            "expected": {**value, "description": "What the request asked for."},
            "actual": {**value, "description": "What the video is."},
        },
    }


def _error() -> dict[str, Any]:
    violation = {"type": "object", "required": ["field", "code", "message"],
                 "properties": {"field": {"type": "string"}, "code": {"type": "string"},
                                "message": {"type": "string"}}}
    return {
        "type": "object",
        "description": "Why the job did not complete. EvoLink's task error codes pass through unchanged.",
        "required": ["code", "message"],
        "additionalProperties": True,
        "properties": {
            "code": {"type": "string", "minLength": 1,
                     "description": "EvoLink's error.code (as a string), or a relay code such as "
                                    "result_expired, no_results, task_not_found, cancelled, expired, "
                                    "invalid_request, unplayable_output, output_mismatch."},
            "message": {"type": "string", "description": "Human-readable; may be empty."},
            "type": {"type": ["string", "null"], "description": "EvoLink's error.type (failed, cancelled)."},
            "status": {"type": ["integer", "null"], "description": "EvoLink's HTTP status (rejected)."},
            "provider_code": {"type": "string", "description": "EvoLink's error code of the create call (rejected)."},
            "reason": {"type": "string", "enum": ["caller", "deadline"],
                       "description": "Who cancelled the job (cancelled by the relay): its caller, or its deadline."},
            "abandoned_task_id": {"type": ["string", "null"],
                                  "description": "The task left running at EvoLink when a running job was cancelled "
                                                 "(EvoLink may still bill it)."},
            "errors": {"type": "array", "items": violation,
                       "description": "Every broken rule (rejected by validation)."},
            "output": {"type": "integer", "minimum": 0,
                       "description": "The output that failed its checks (output_mismatch)."},
            "checks": {"type": "array", "items": _check(),
                       "description": "That output's checks (output_mismatch, with RELAY_OUTPUT_CHECKS=strict)."},
        },
    }


def _attempts() -> dict[str, Any]:
    failure = {
        "type": "object", "required": ["task_id"], "additionalProperties": True,
        "properties": {
            "task_id": {"type": ["string", "null"], "description": "EvoLink's task id."},
            "code": {"type": "string", "description": "EvoLink's error code of a failed task."},
            "message": {"type": "string", "description": "EvoLink's error message of a failed task."},
            "type": {"type": ["string", "null"], "description": "EvoLink's error type."},
            "failed_at": {**_TIME, "description": "When the relay read the task failed (UTC)."},
        },
    }
    return {"type": "array", "items": failure,
            "description": "Every EvoLink task of the job, oldest first: each one that failed with a code that says "
                           "try again (with code, message and failed_at), then the last one (task_id only). Empty "
                           "when no task was created."}


def _task_id(outcome: str) -> dict[str, Any]:
    if outcome == "rejected":
        return {"type": "null", "description": "Always null: no task was created."}
    if outcome == "expired":
        return {"type": ["string", "null"],
                "description": "EvoLink's task id; null when the create's outcome never became known."}
    return {"type": "string", "minLength": 1, "description": "EvoLink's task id."}


def _model(outcome: str) -> dict[str, Any]:
    if outcome == "rejected":
        return {"type": ["string", "null"],
                "description": "The model the request named; not validated when the request was invalid."}
    return {"type": "string", "enum": list(ALL_MODELS), "description": "The model the job used."}


def _duration(outcome: str) -> dict[str, Any]:
    text = "The requested duration in seconds; null when the request left it to EvoLink's default (5)."
    if outcome == "rejected":
        return {"description": text + " Copied as sent: not validated when the request was invalid."}
    return {"type": ["integer", "null"], "minimum": DURATION_MIN, "maximum": DURATION_MAX, "description": text}


def _outputs(outcome: str) -> dict[str, Any]:
    if outcome == "completed":
        return {"type": "array", "minItems": 1, "items": _output(),
                "description": "The stored copies, one per EvoLink result, in EvoLink's order."}
    return {"type": "array", "maxItems": 0, "description": "Always empty for this outcome."}


def _data(outcome: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "job_id": {**_JOB_ID, "description": "The relay's job id; equal to the event's subject."},
        "task_id": _task_id(outcome),
        "model": _model(outcome),
        "outcome": {"const": outcome, "description": "The last part of the event type."},
        "outputs": _outputs(outcome),
        "duration": _duration(outcome),
        "metadata": {"type": "object", "description": "The caller's metadata, unchanged."},
        "created_at": {**_TIME, "description": "When the relay accepted the job (UTC)."},
        "finished_at": {**_TIME, "description": "When the outcome was recorded (UTC)."},
        "attempts": _attempts(),
    }
    required = list(properties)
    if outcome != "completed":
        properties["error"] = _error()
        required.append("error")
    return {"type": "object", "description": "The job and its outcome.", "required": required,
            "additionalProperties": False, "properties": properties}


def _at_risk_data() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "job_id": {**_JOB_ID, "description": "The relay's job id; equal to the event's subject."},
        "task_id": {"type": "string", "minLength": 1, "description": "EvoLink's task id (completed)."},
        "model": _model("at_risk"),
        "duration": _duration("at_risk"),
        "metadata": {"type": "object", "description": "The caller's metadata, unchanged."},
        "created_at": {**_TIME, "description": "When the relay accepted the job (UTC)."},
        "result_seen_at": {**_TIME, "description": "When the relay first read the task completed (UTC)."},
        "expires_at": {**_TIME, "description": "When the result's URLs expire at the latest (UTC): 24 h after "
                                               "result_seen_at."},
        "attempts": _attempts(),
    }
    return {"type": "object", "description": "The job whose result is at risk.", "required": list(properties),
            "additionalProperties": False, "properties": properties}


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type, e.g. ``io.seedance-relay.job.completed``."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
    if event_type in STORYBOARD_EVENT_TYPES:
        return storyboard_event_schema(event_type, _output())
    outcome = event_type.removeprefix(TYPE_PREFIX)
    envelope: dict[str, Any] = {
        "specversion": {"const": "1.0", "description": "CloudEvents 1.0, structured JSON mode."},
        "id": {"type": "string", "pattern": "^[0-9a-f]{32}$",
               "description": "sha256(job id, outcome), first 32 hex digits: the same on every redelivery."},
        "source": {"type": "string", "format": "uri-reference", "minLength": 1,
                   "description": f"The relay: {SOURCE}."},
        "type": {"const": event_type, "description": "io.seedance-relay.job.<outcome>; filter on it."},
        "subject": {**_JOB_ID, "description": "The job id."},
        "tenant": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$",
                   "description": "CloudEvents extension: the job's tenant; subscribers may filter on it."},
        "time": {**_TIME, "description": "When the event was built (UTC)."},
        "datacontenttype": {"const": "application/json", "description": "data is a JSON object."},
        "data": _at_risk_data() if outcome == AT_RISK else _data(outcome),
    }
    return {
        "$schema": DRAFT,
        "$id": f"urn:seedance-relay:schema:{event_type}",
        "title": event_type,
        "description": _WHEN[outcome],
        "type": "object",
        "required": list(envelope),
        "additionalProperties": False,
        "properties": envelope,
    }


def all_event_schemas() -> dict[str, dict[str, Any]]:
    """``{event type: schema}`` for every type in :data:`handlers.domain.events.EVENT_TYPES`."""
    return {event_type: event_schema(event_type) for event_type in EVENT_TYPES}
