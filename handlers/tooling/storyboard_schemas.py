"""JSON Schemas (draft 2020-12) of the storyboard events, and an example of each for ``docs/events.md``.

:func:`handlers.tooling.event_schemas.event_schema` hands the storyboard types here, with the schema of a stored
output (the joined video is one, whose ``media`` also says how it was joined).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from handlers.domain.jobs import Job, JobStatus, Outcome, Output
from handlers.domain.storyboards import (
    STORYBOARD_EVENT_TYPES,
    STORYBOARD_MODEL,
    STORYBOARD_TYPE_PREFIX,
    build_storyboard_event,
)

__all__ = ["STORYBOARD_EVENT_TYPES", "example_storyboard_event", "storyboard_event_schema"]

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_SOURCE = "urn:seedance-relay"
_JOB_ID = {"type": "string", "pattern": "^job_[0-9a-f]{26}$"}
_STORYBOARD_ID = {"type": "string", "pattern": "^sb_[0-9a-f]{26}$"}
_WHEN = {
    "completed": "Every shot of a storyboard revision is published and, with assemble, their outputs are joined in "
                 "shot order into one MP4 (stored with its media facts, a duration check and its pictures).",
    "failed": "A shot of a storyboard revision ended without an output (error.shot names it; a shot that "
              "failed because a shot it names failed is not named), or the outputs could not be joined "
              "(assembly_failed), or the revision expired.",
}
_ASSEMBLY = {"type": "object", "required": ["method", "reason", "parts"], "additionalProperties": False,
             "description": "How the shots were joined: remux (packets copied: the shots match) or reencode "
                            "(H.264/AAC), and why it re-encoded.",
             "properties": {"method": {"enum": ["remux", "reencode"]}, "reason": {"type": ["string", "null"]},
                            "parts": {"type": "integer", "minimum": 1}}}


def _output(job_output: Mapping[str, Any]) -> dict[str, Any]:
    output = copy.deepcopy(dict(job_output))
    output["description"] = "The joined video: one stored MP4 of the shots' first outputs, in shot order."
    media = output["properties"]["media"]
    media["properties"]["assembly"] = _ASSEMBLY
    media["required"] = [*media.get("required", []), "assembly"]
    return output


def _data(outcome: str, job_output: Mapping[str, Any]) -> dict[str, Any]:
    completed = outcome == "completed"
    shot = {"type": "object", "required": ["id", "job_id"], "additionalProperties": False,
            "properties": {"id": {"type": "string"}, "job_id": _JOB_ID}}
    outputs: dict[str, Any] = ({"type": "array", "maxItems": 1, "items": _output(job_output),
                                "description": "The joined video (with assemble); empty without assemble."}
                               if completed else {"type": "array", "maxItems": 0, "description": "Always empty."})
    properties: dict[str, Any] = {
        "storyboard_id": {**_STORYBOARD_ID, "description": "The storyboard; equal to the event's subject."},
        "revision": {"type": "integer", "minimum": 1, "description": "1, then one more for each rerun."},
        "job_id": {**_JOB_ID, "description": "The revision's own job (GET /v1/jobs/{job_id}; its output-0 is the "
                                             "joined video, so job://JOB_ID/output-0 names it)."},
        "outcome": {"const": outcome},
        "assemble": {"type": "boolean", "description": "Whether the shots are joined."},
        "shots": {"type": "array", "minItems": 1, "items": shot, "description": "Each shot's job, in order."},
        "outputs": outputs,
        "metadata": {"type": "object", "description": "The storyboard's metadata, unchanged."},
        "created_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": "string", "format": "date-time"},
    }
    required = list(properties)
    if not completed:
        properties["error"] = {"type": "object", "required": ["code", "message", "shot"], "additionalProperties": True,
                               "properties": {
                                   "code": {"type": "string", "description": "dependency_failed (a shot failed), "
                                                                             "assembly_failed, expired, cancelled."},
                                   "message": {"type": "string"},
                                   "shot": {"type": ["string", "null"], "description": "The shot that failed."},
                                   "dependency": {**_JOB_ID, "description": "That shot's job."}}}
        required.append("error")
    return {"type": "object", "required": required, "additionalProperties": False, "properties": properties}


def storyboard_event_schema(event_type: str, job_output: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of ``io.seedance-relay.storyboard.completed`` or ``….failed``; ``job_output`` is the schema of a
    job's stored output."""
    if event_type not in STORYBOARD_EVENT_TYPES:
        raise ValueError(f"unknown storyboard event type {event_type!r}; known: {', '.join(STORYBOARD_EVENT_TYPES)}")
    outcome = event_type.removeprefix(STORYBOARD_TYPE_PREFIX)
    envelope: dict[str, Any] = {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "pattern": "^[0-9a-f]{32}$",
               "description": "sha256(revision job id, outcome), first 32 hex digits: the same on every redelivery."},
        "source": {"type": "string", "format": "uri-reference", "minLength": 1},
        "type": {"const": event_type, "description": "io.seedance-relay.storyboard.<outcome>; filter on it."},
        "subject": {**_STORYBOARD_ID, "description": "The storyboard id."},
        "tenant": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"const": "application/json"},
        "data": _data(outcome, job_output),
    }
    return {"$schema": _DRAFT, "$id": f"urn:seedance-relay:schema:{event_type}", "title": event_type,
            "description": _WHEN[outcome], "type": "object", "required": list(envelope),
            "additionalProperties": False, "properties": envelope}


_EXAMPLE_MEDIA = {"duration": 9.0, "width": 864, "height": 496, "fps": 24.0, "frames": 216, "video_codec": "h264",
                  "has_audio": True, "audio_codec": "aac", "bitrate": 1_402_000, "size": 1_577_250,
                  "assembly": {"method": "remux", "reason": None, "parts": 2}}


def example_storyboard_event(event_type: str) -> dict[str, Any]:
    """A realistic storyboard event of ``event_type``: two shots joined, or the first shot failed."""
    outcome = Outcome.COMPLETED if event_type.endswith(".completed") else Outcome.FAILED
    t0, storyboard = 1_795_630_000.0, "sb_5f0c1e9a2b7d4c8e1f3a6b9d0c"
    shots = [{"id": "intro", "job_id": "job_0d1c2b3a4f5e6d7c8b9a0f1e2d", "request": {}},
             {"id": "dusk", "job_id": "job_9a8b7c6d5e4f3a2b1c0d9e8f7a", "request": {}}]
    job_id = "job_3c4d5e6f7a8b9c0d1e2f3a4b5c"
    joined = Output(uri=f"s3://relay-media/jobs/{job_id}/output-0.mp4", key=f"jobs/{job_id}/output-0.mp4",
                    size=1_577_250, sha256="5" * 64, media=_EXAMPLE_MEDIA,
                    checks=({"name": "duration", "ok": True, "expected": 9.0, "actual": 9.0},),
                    frames={role: f"s3://relay-media/jobs/{job_id}/output-0.{role}.jpg"
                            for role in ("poster", "poster-thumbnail", "last-frame", "last-frame-thumbnail")})
    error = None if outcome is Outcome.COMPLETED else {
        "code": "dependency_failed", "dependency": shots[0]["job_id"],
        "message": f"job {shots[0]['job_id']} that it waits for ended failed (content_policy_violation); "
                   "it will never be published"}
    job = Job(id=job_id, request={"storyboard": storyboard, "revision": 1, "assemble": True, "shots": shots,
                                  "metadata": {"film": "lighthouse"}},
              fingerprint="0" * 64, created_at=t0, updated_at=t0 + 300, status=JobStatus.STORED, tenant="default",
              model=STORYBOARD_MODEL, storyboard=storyboard, outcome=outcome, finished_at=t0 + 300,
              outputs=(joined,) if outcome is Outcome.COMPLETED else (), error=error)
    return build_storyboard_event(job, now=t0 + 300.01, source=_SOURCE)
