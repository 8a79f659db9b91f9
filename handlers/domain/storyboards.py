"""Storyboards: a list of shots, each an ordinary job request that may name earlier shots' outputs.

A storyboard body is ``{"shots": [{"id", "request", "metadata"?}, …], "assemble": bool?, "metadata": {}?}``.
A shot names an earlier shot's files as ``shot://SHOT_ID/output-0``, ``shot://SHOT_ID/poster`` or
``shot://SHOT_ID/last-frame``, in ``image_urls`` and ``video_urls`` like ``job://`` references; only shots
listed before it may be named, so the shots can never wait for each other in a circle.

Each run of a storyboard is a *revision*: its shots' job ids and one more job, the storyboard's own, that
waits for every shot and then (with ``assemble``) joins their videos and publishes the storyboard's event
(:func:`build_storyboard_event`). A rerun of one shot is the next revision: new jobs for that shot and every
shot that names it, directly or through others (:func:`affected_shots`), the other shots' jobs kept.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from handlers.base.errors import InvalidRequest, Violation
from handlers.domain.jobrequest import check_metadata
from handlers.domain.jobs import Job, Outcome, canonical_json, rfc3339

__all__ = ["MAX_REVISIONS", "MAX_SHOTS", "SHOT_SCHEME", "STORYBOARD_EVENT_TYPES", "STORYBOARD_MODEL",
           "STORYBOARD_TYPE_PREFIX", "Shot", "StoryboardSpec", "affected_shots", "build_storyboard_event",
           "parse_storyboard", "shot_references", "storyboard_id", "to_job_references"]

SHOT_SCHEME = "shot://"
MAX_SHOTS = 20
MAX_REVISIONS = 100
STORYBOARD_MODEL = "storyboard"
"""The ``model`` of a storyboard's own job (it never reaches EvoLink)."""
STORYBOARD_TYPE_PREFIX = "io.seedance-relay.storyboard."
STORYBOARD_EVENT_TYPES = (STORYBOARD_TYPE_PREFIX + "completed", STORYBOARD_TYPE_PREFIX + "failed")
_SHOT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_PART = re.compile(r"output-(0|[1-9][0-9]{0,2})|poster|last-frame")
_ARRAYS = ("image_urls", "video_urls")
_FIELDS = frozenset({"shots", "assemble", "metadata"})
_SHOT_FIELDS = frozenset({"id", "request", "metadata"})


@dataclass(frozen=True, slots=True)
class Shot:
    id: str
    request: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """The shots this one names, each once, in the order it names them."""
        return tuple(dict.fromkeys(shot for _, shot, _ in shot_references(self.request)))


@dataclass(frozen=True, slots=True)
class StoryboardSpec:
    shots: tuple[Shot, ...]
    assemble: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def shot(self, shot_id: str) -> Shot:
        return next(shot for shot in self.shots if shot.id == shot_id)

    def as_dict(self) -> dict[str, Any]:
        return {"shots": [{"id": s.id, "request": dict(s.request), "metadata": dict(s.metadata)} for s in self.shots],
                "assemble": self.assemble, "metadata": dict(self.metadata)}


def shot_references(request: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """``(field, shot id, part)`` of every ``shot://`` URL in ``image_urls`` and ``video_urls`` (malformed ones have
    ``""`` as part)."""
    for array in _ARRAYS:
        urls = request.get(array)
        for index, url in enumerate(urls if isinstance(urls, list) else []):
            if isinstance(url, str) and url[:len(SHOT_SCHEME)].lower() == SHOT_SCHEME:
                shot, _, part = url[len(SHOT_SCHEME):].partition("/")
                yield f"{array}[{index}]", shot, part if _PART.fullmatch(part) else ""


def to_job_references(request: Mapping[str, Any], jobs: Mapping[str, str]) -> dict[str, Any]:
    """``request`` with each ``shot://SHOT/PART`` replaced by ``job://JOB/PART`` of that shot's job in ``jobs``."""
    body = dict(request)
    for array in _ARRAYS:
        urls = body.get(array)
        if isinstance(urls, list):
            body[array] = [_job_reference(url, jobs) for url in urls]
    return body


def _job_reference(url: object, jobs: Mapping[str, str]) -> object:
    if not isinstance(url, str) or url[:len(SHOT_SCHEME)].lower() != SHOT_SCHEME:
        return url
    shot, _, part = url[len(SHOT_SCHEME):].partition("/")
    return f"job://{jobs[shot]}/{part}" if shot in jobs else url


def storyboard_id(tenant: str, idempotency_key: str | None, spec: StoryboardSpec) -> str:
    """``sb_`` and 26 hex digits: a repeat of the same submission (same key, else same body) finds it again."""
    basis = f"key:{idempotency_key}" if idempotency_key else f"body:{canonical_json(spec.as_dict())}"
    return "sb_" + hashlib.sha256(f"{tenant}\x00storyboard\x00{basis}".encode()).hexdigest()[:26]


def affected_shots(spec: StoryboardSpec, shot_id: str) -> list[str]:
    """``shot_id`` and every shot that names it, directly or through other shots, in storyboard order."""
    affected = {shot_id}
    for shot in spec.shots:
        if affected.intersection(shot.names):
            affected.add(shot.id)
    return [shot.id for shot in spec.shots if shot.id in affected]


# --- parsing --------------------------------------------------------------------------------------

def _field_problems(body: Mapping[Any, Any], allowed: frozenset[str], where: str) -> list[Violation]:
    return [Violation(f"{where}{key}", "unknown_field", f"{where}{key} is not accepted; accepted fields: "
                      f"{', '.join(sorted(allowed))}") for key in body if key not in allowed]


def _reference_problems(index: int, request: Mapping[str, Any], earlier: Sequence[str]) -> list[Violation]:
    problems = []
    for field_name, shot, part in shot_references(request):
        path = f"shots[{index}].request.{field_name}"
        if not part:
            problems.append(Violation(path, "invalid_reference", f"{path} must be shot://SHOT_ID/PART with PART "
                                      "one of output-N, poster, last-frame"))
        elif shot not in earlier:
            known = ", ".join(earlier) or "none"
            problems.append(Violation(path, "unknown_shot", f"{path} names shot {shot!r}, which is not listed "
                                      f"before this shot (earlier shots: {known})"))
    return problems


def _shot(index: int, raw: object, earlier: list[str]) -> tuple[Shot | None, list[Violation]]:
    where = f"shots[{index}]"
    if not isinstance(raw, dict):
        return None, [Violation(where, "invalid_type", f"{where} must be an object with id and request")]
    problems = _field_problems(raw, _SHOT_FIELDS, f"{where}.")
    shot_id, request, metadata = raw.get("id"), raw.get("request"), raw.get("metadata", {})
    if not isinstance(shot_id, str) or not _SHOT_ID.fullmatch(shot_id):
        problems.append(Violation(f"{where}.id", "invalid_format", f"{where}.id must be 1-63 characters of "
                                  "a-z 0-9 _ - starting with a letter or digit"))
    elif shot_id in earlier:
        problems.append(Violation(f"{where}.id", "duplicate", f"{where}.id {shot_id!r} is already used by an "
                                  "earlier shot"))
    if not isinstance(request, dict):
        problems.append(Violation(f"{where}.request", "invalid_type", f"{where}.request must be a job request "
                                  "object (as POST /v1/jobs takes)"))
    else:
        problems += _reference_problems(index, request, earlier)
    problems += [Violation(f"{where}.{v.field}", v.code, f"{where}.{v.message}") for v in check_metadata(metadata)]
    if problems or not isinstance(shot_id, str) or not isinstance(request, dict):
        return None, problems
    return Shot(shot_id, request, dict(metadata)), []


def parse_storyboard(body: object) -> StoryboardSpec:
    """The storyboard ``body`` describes, or ``InvalidRequest`` naming every problem of its shape (each shot's
    request is checked as a job request later, by the submitter)."""
    if not isinstance(body, dict):
        raise InvalidRequest([Violation("$", "invalid_type", "a storyboard must be a JSON object with shots")])
    problems = _field_problems(body, _FIELDS, "")
    shots_raw, assemble, metadata = body.get("shots"), body.get("assemble", False), body.get("metadata", {})
    if not isinstance(shots_raw, list) or not 1 <= len(shots_raw) <= MAX_SHOTS:
        problems.append(Violation("shots", "invalid_count", f"shots must be an array of 1 to {MAX_SHOTS} shots"))
        shots_raw = shots_raw[:MAX_SHOTS] if isinstance(shots_raw, list) else []
    if not isinstance(assemble, bool):
        problems.append(Violation("assemble", "invalid_type", "assemble must be a boolean (true or false)"))
    problems += check_metadata(metadata)
    shots: list[Shot] = []
    seen: list[str] = []  # every well-formed id so far, of shots with problems too
    for index, raw in enumerate(shots_raw):
        shot, found = _shot(index, raw, seen)
        problems += found
        shot_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(shot_id, str) and _SHOT_ID.fullmatch(shot_id) and shot_id not in seen:
            seen.append(shot_id)
        if shot is not None:
            shots.append(shot)
    if problems:
        raise InvalidRequest(problems)
    return StoryboardSpec(tuple(shots), bool(assemble), dict(metadata))


# --- the event ------------------------------------------------------------------------------------

def _shot_rows(job: Job) -> list[dict[str, Any]]:
    shots = job.request.get("shots")
    return [{"id": str(s.get("id")), "job_id": str(s.get("job_id"))} for s in shots if isinstance(s, Mapping)] \
        if isinstance(shots, list) else []


def _error(job: Job, rows: list[dict[str, Any]]) -> dict[str, Any]:
    error = dict(job.error or {})
    failed_job = error.get("dependency")
    error["shot"] = next((row["id"] for row in rows if row["job_id"] == failed_job), None)
    return error


def build_storyboard_event(job: Job, *, now: float, source: str) -> dict[str, Any]:
    """The CloudEvent of a storyboard's own job whose outcome is known: ``storyboard.completed`` (with the joined
    video, when it assembles) or ``storyboard.failed`` (naming the shot that failed)."""
    if job.outcome is None:
        raise ValueError(f"job {job.id} has no outcome yet")
    completed = Outcome(job.outcome) is Outcome.COMPLETED
    outcome = "completed" if completed else "failed"
    rows = _shot_rows(job)
    data: dict[str, Any] = {
        "storyboard_id": job.storyboard, "revision": job.request.get("revision"), "job_id": job.id,
        "outcome": outcome, "assemble": bool(job.request.get("assemble")), "shots": rows,
        "outputs": [o.as_dict() for o in job.outputs],
        "metadata": dict(job.request.get("metadata") or {}),
        "created_at": rfc3339(job.created_at),
        "finished_at": rfc3339(job.finished_at) if job.finished_at is not None else None,
    }
    if not completed:
        data["error"] = _error(job, rows)
    return {
        "specversion": "1.0", "id": hashlib.sha256(f"{job.id}:storyboard.{outcome}".encode()).hexdigest()[:32],
        "source": source, "type": STORYBOARD_TYPE_PREFIX + outcome, "subject": job.storyboard, "tenant": job.tenant,
        "time": rfc3339(now), "datacontenttype": "application/json", "data": data,
    }
