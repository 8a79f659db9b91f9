"""Validate a Seedance 2.0 create request against EvoLink's contract, all rules at once.

:func:`validate_request` returns every :class:`~handlers.base.errors.Violation` a body commits
(it never stops at the first); :func:`check_request` raises
:class:`~handlers.base.errors.InvalidRequest` carrying them; :func:`parse_request_bytes` does the
same for raw HTTP bodies. :func:`reference_warnings` lists prompt mentions of references
that were not given: warnings, never errors. Limits come from :mod:`handlers.domain.contract`;
the rule table is in ``docs/validation.md``.

When ``model`` is missing or unknown, the rules that do not depend on the model still run;
per-model rules (counts, quality per model, fields only some models accept) are checked
against the union of all models.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from handlers.base.errors import InvalidRequest, Violation
from handlers.base.jsonbody import parse_object
from handlers.domain.contract import (
    ASPECT_RATIOS,
    AUDIO,
    DURATION_MAX,
    DURATION_MIN,
    IMAGE,
    MODEL_PARAMS_FIELDS,
    MODELS,
    PROMPT_MAX_CJK_CHARS,
    PROMPT_MAX_WORDS,
    REQUEST_BODY_MAX,
    VIDEO,
    MediaLimits,
    ModelSpec,
)
from handlers.provider.prompt import find_reference_mentions, measure_prompt
from handlers.provider.validation_urls import check_callback_url, check_media_url

__all__ = [
    "CallbackPolicy",
    "check_request",
    "json_type",
    "parse_request_bytes",
    "reference_warnings",
    "validate_request",
]

CallbackPolicy = Literal["optional", "forbidden"]

_ALL_MEDIA: tuple[MediaLimits, ...] = (IMAGE, VIDEO, AUDIO)
_ALL_QUALITIES = tuple(dict.fromkeys(q for spec in MODELS.values() for q in spec.qualities))
_ALL_FIELDS = frozenset[str]().union(*(spec.fields for spec in MODELS.values()))
_PLURAL = {"image": "images", "video": "videos", "audio": "audio clips"}
_BOOLEAN = "a boolean (true or false)"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class _Request:
    """A body that is a JSON object, with its model (None when missing or unknown)."""

    body: Mapping[Any, object]
    spec: ModelSpec | None
    allow_http: bool
    callback: CallbackPolicy
    references: bool = False

    @property
    def fields(self) -> frozenset[str]:
        return self.spec.fields if self.spec else _ALL_FIELDS

    @property
    def media(self) -> tuple[MediaLimits, ...]:
        return self.spec.media if self.spec else _ALL_MEDIA


def json_type(value: object) -> str:
    """The JSON name of a value's type (``null``, ``boolean``, ``integer``, …)."""
    names: tuple[tuple[type, str], ...] = (
        (bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
        (list, "array"), (dict, "object"),
    )
    if value is None:
        return "null"
    return next((name for kind, name in names if isinstance(value, kind)), type(value).__name__)


def _wrong_type(field: str, expected: str, value: object) -> Violation:
    return Violation(field, "invalid_type", f"{field} must be {expected}, got {json_type(value)}")


def _key_path(key: object, parent: str = "") -> str:
    """JSON path of an object key: ``seed``, ``model_params.depth``, ``["odd key"]``."""
    text = str(key)
    if _IDENTIFIER.fullmatch(text):
        return f"{parent}.{text}" if parent else text
    return f"{parent}[{json.dumps(text)}]"


def _show(value: int) -> str:
    return str(value) if value.bit_length() <= 64 else "a very large integer"


def _amount(kind: str, count: int) -> str:
    """``1 image is`` / ``3 images are``: a count, its noun and verb."""
    return f"1 {kind} is" if count == 1 else f"{count} {_PLURAL[kind]} are"


def _given(body: Mapping[Any, object], limits: MediaLimits) -> int:
    value = body.get(limits.array)
    return len(value) if isinstance(value, list) else 0


def _model(body: Mapping[Any, object]) -> tuple[ModelSpec | None, list[Violation]]:
    if "model" not in body:
        return None, [Violation("model", "required", "model is required")]
    value = body["model"]
    if not isinstance(value, str):
        return None, [_wrong_type("model", "a string", value)]
    spec = MODELS.get(value)
    if spec is None:
        message = f"unknown model {value[:80]!r}; valid models: {', '.join(MODELS)}"
        return None, [Violation("model", "unknown_model", message)]
    return spec, []


def _prompt(req: _Request) -> list[Violation]:
    if "prompt" not in req.body:
        return [Violation("prompt", "required", "prompt is required")]
    value = req.body["prompt"]
    if not isinstance(value, str):
        return [_wrong_type("prompt", "a string", value)]
    if not value.strip():
        return [Violation("prompt", "empty", "prompt must not be empty")]
    length = measure_prompt(value)
    if length.fits:
        return []
    message = (
        f"prompt is too long: {length.cjk_chars} CJK characters and {length.words} words use "
        f"{length.budget_used:.0%} of the budget; at most {PROMPT_MAX_CJK_CHARS} CJK characters "
        f"or {PROMPT_MAX_WORDS} words are allowed, one CJK character counting as "
        f"{PROMPT_MAX_WORDS // PROMPT_MAX_CJK_CHARS} words"
    )
    return [Violation("prompt", "too_long", message)]


def _unknown_fields(req: _Request) -> list[Violation]:
    owner = req.spec.name if req.spec else "any model"
    accepted = ", ".join(sorted(req.fields))
    return [
        Violation(_key_path(key), "unknown_field", f"{key!s:.80} is not accepted by {owner}; "
                  f"accepted fields: {accepted}")
        for key in req.body
        if key not in req.fields
    ]


def _count_bounds(spec: ModelSpec, limits: MediaLimits) -> tuple[int, int]:
    if limits.kind == IMAGE.kind:
        return spec.min_images, spec.max_images
    return 0, limits.max_count


def _count(req: _Request, limits: MediaLimits, count: int) -> list[Violation]:
    if req.spec is None:
        return []
    low, high = _count_bounds(req.spec, limits)
    if count > high:
        message = f"at most {_amount(limits.kind, high)} allowed, got {count}"
        return [Violation(limits.array, "too_many", message)]
    if count < low:
        message = f"at least {_amount(limits.kind, low)} required by {req.spec.name}, got {count}"
        return [Violation(limits.array, "too_few", message)]
    return []


def _media_item(req: _Request, limits: MediaLimits, index: int, item: object) -> list[Violation]:
    field = f"{limits.array}[{index}]"
    if not isinstance(item, str):
        return [_wrong_type(field, "a URL string", item)]
    return check_media_url(item, field, limits, allow_http=req.allow_http, references=req.references)


def _media_array(req: _Request, limits: MediaLimits) -> list[Violation]:
    if limits.array not in req.body:
        return _count(req, limits, 0)
    value = req.body[limits.array]
    if not isinstance(value, list):
        return [_wrong_type(limits.array, "an array of URL strings", value)]
    found = _count(req, limits, len(value))
    for index, item in enumerate(value):
        found += _media_item(req, limits, index, item)
    return found


def _media(req: _Request) -> list[Violation]:
    return [v for limits in req.media for v in _media_array(req, limits)]


def _audio_needs_visual(req: _Request) -> list[Violation]:
    if AUDIO not in req.media or _given(req.body, AUDIO) == 0:
        return []
    if _given(req.body, IMAGE) or _given(req.body, VIDEO):
        return []
    message = "audio_urls needs at least 1 image or 1 video beside it; audio alone is refused"
    return [Violation(AUDIO.array, "audio_needs_visual", message)]


def _duration(req: _Request) -> list[Violation]:
    if "duration" not in req.body:
        return []
    value = req.body["duration"]
    if isinstance(value, bool) or not isinstance(value, int):
        return [_wrong_type("duration", "an integer number of seconds", value)]
    if DURATION_MIN <= value <= DURATION_MAX:
        return []
    message = f"duration must be {DURATION_MIN} to {DURATION_MAX} seconds, got {_show(value)}"
    return [Violation("duration", "out_of_range", message)]


def _choice(req: _Request, field: str, allowed: tuple[str, ...]) -> list[Violation]:
    if field not in req.body:
        return []
    value = req.body[field]
    if not isinstance(value, str):
        return [_wrong_type(field, "a string", value)]
    if value in allowed:
        return []
    owner = req.spec.name if req.spec else "any model"
    message = f"{field} {value[:40]!r} is not offered by {owner}; choose one of {', '.join(allowed)}"
    return [Violation(field, "invalid_choice", message)]


def _quality(req: _Request) -> list[Violation]:
    return _choice(req, "quality", req.spec.qualities if req.spec else _ALL_QUALITIES)


def _aspect_ratio(req: _Request) -> list[Violation]:
    return _choice(req, "aspect_ratio", ASPECT_RATIOS)


def _flags(req: _Request) -> list[Violation]:
    return [
        _wrong_type(field, _BOOLEAN, req.body[field])
        for field in ("generate_audio", "content_filter")
        if field in req.body and not isinstance(req.body[field], bool)
    ]


def _callback(req: _Request) -> list[Violation]:
    if "callback_url" not in req.body:
        return []
    if req.callback == "forbidden":
        message = "callback_url is set by the relay; leave it out of the request"
        return [Violation("callback_url", "not_allowed", message)]
    value = req.body["callback_url"]
    if not isinstance(value, str):
        return [_wrong_type("callback_url", "a URL string", value)]
    return check_callback_url(value, allow_http=req.allow_http)


def _model_params(req: _Request) -> list[Violation]:
    if "model_params" not in req.body or "model_params" not in req.fields:
        return []
    value = req.body["model_params"]
    if not isinstance(value, dict):
        return [_wrong_type("model_params", "an object", value)]
    accepted = ", ".join(MODEL_PARAMS_FIELDS)
    found = [
        Violation(_key_path(key, "model_params"), "unknown_field",
                  f"model_params accepts only {accepted}")
        for key in value
        if key not in MODEL_PARAMS_FIELDS
    ]
    found += [
        _wrong_type(f"model_params.{key}", _BOOLEAN, value[key])
        for key in MODEL_PARAMS_FIELDS
        if key in value and not isinstance(value[key], bool)
    ]
    return found


_CHECKS: tuple[Callable[[_Request], list[Violation]], ...] = (
    _prompt,
    _unknown_fields,
    _media,
    _audio_needs_visual,
    _duration,
    _quality,
    _aspect_ratio,
    _flags,
    _callback,
    _model_params,
)


def validate_request(
    body: object, *, allow_http: bool = False, callback: CallbackPolicy = "optional", references: bool = False
) -> list[Violation]:
    """Every rule ``body`` breaks, in a stable order; an empty list means valid.

    ``allow_http`` accepts plain ``http`` media and callback URLs (the sandbox is the
    provider); ``callback="forbidden"`` refuses any ``callback_url`` (the relay sets it);
    ``references`` accepts ``job://JOB_ID/PART`` references to earlier jobs' outputs in
    ``image_urls`` and ``video_urls`` (the relay resolves them; EvoLink never sees one).
    """
    if not isinstance(body, dict):
        message = f"the request body must be a JSON object, got {json_type(body)}"
        return [Violation("$", "invalid_type", message)]
    spec, found = _model(body)
    request = _Request(body, spec, allow_http, callback, references)
    for check in _CHECKS:
        found += check(request)
    return found


def check_request(
    body: object, *, allow_http: bool = False, callback: CallbackPolicy = "optional", references: bool = False
) -> dict[str, Any]:
    """A deep copy of a valid ``body`` (no defaults added); else raise ``InvalidRequest``."""
    violations = validate_request(body, allow_http=allow_http, callback=callback, references=references)
    if violations or not isinstance(body, dict):
        raise InvalidRequest(violations)
    return copy.deepcopy(body)


def parse_request_bytes(
    raw: bytes, *, allow_http: bool = False, callback: CallbackPolicy = "optional"
) -> dict[str, Any]:
    """Decode a raw HTTP body (size, UTF-8, JSON, object) and :func:`check_request` it."""
    if len(raw) > REQUEST_BODY_MAX:
        message = f"the body is {len(raw)} bytes; at most {REQUEST_BODY_MAX} bytes are allowed"
        raise InvalidRequest([Violation("$", "too_large", message)])
    body = parse_object(raw, what="the body", strict=True)
    return check_request(body, allow_http=allow_http, callback=callback)


def reference_warnings(body: object) -> list[Violation]:
    """Prompt mentions (``@image4``, ``video 2``) of references beyond those given."""
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        return []
    counts = {limits.kind: _given(body, limits) for limits in _ALL_MEDIA}
    return [
        Violation("prompt", "reference_out_of_range",
                  f"prompt mentions {kind} {number} but {_amount(kind, counts[kind])} given "
                  "(numbered from 1 in array order)")
        for kind, number in dict.fromkeys(find_reference_mentions(body["prompt"]))
        if not 1 <= number <= counts[kind]
    ]
