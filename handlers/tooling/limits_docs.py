"""EvoLink's limits as tables: the block between the ``limits`` markers of ``docs/evolink.md``.

Rendered from :mod:`handlers.domain.contract`, so the page cannot drift from what the relay checks.
"""

from __future__ import annotations

import json
from typing import Any

from handlers.domain.contract import (
    ALL_MODELS,
    ASPECT_RATIOS,
    AUDIO,
    CALLBACK_URL_MAX,
    DEFAULTS,
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
)
from handlers.tooling.markdown import code, table

__all__ = ["evolink_limits"]

_MB = 1024 * 1024
_TO = "\N{EN DASH}"  # between the ends of a range


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


def _span(low: float, high: float, unit: str = "") -> str:
    if not high:
        return "—"
    return f"{_number(low)}{_TO}{_number(high)}{unit}" if low else f"≤ {_number(high)}{unit}"


def _media_rows(kinds: tuple[MediaLimits, ...]) -> list[list[str]]:
    def row(label: str, render: Any) -> list[str]:
        return [label, *(render(m) for m in kinds)]

    return [
        row("field", lambda m: f"`{m.array}`"),
        row("count per request", lambda m: f"≤ {m.max_count}"),
        row("file extensions", lambda m: " ".join(f"`{e}`" for e in m.extensions)),
        row("content types", lambda m: " ".join(f"`{c}`" for c in m.content_types)),
        row("size per file", lambda m: f"≤ {_number(m.max_bytes / _MB)} MB ({_number(m.max_bytes)} bytes)"),
        row("width and height", lambda m: _span(m.min_side, m.max_side, " px")),
        row("aspect ratio (w/h)", lambda m: f"{m.min_aspect}{_TO}{m.max_aspect}" if m.max_aspect else "—"),
        row("duration per file", lambda m: _span(m.min_seconds, m.max_seconds, " s")),
        row("total duration", lambda m: _span(0, m.max_total_seconds, " s")),
        row("pixels per frame", lambda m: _span(m.min_pixels, m.max_pixels)),
        row("frame rate", lambda m: _span(m.min_fps, m.max_fps, " fps")),
    ]


def _model_rows(qualities: list[str]) -> list[list[str]]:
    rows = []
    for name in ALL_MODELS:
        spec = MODELS[name]
        if spec.mode == "image":
            references = f"`image_urls`: {spec.min_images}{_TO}{spec.max_images}, required"
        elif spec.media:
            references = ", ".join(f"`{m.array}` ≤ {spec.max_images if m is IMAGE else m.max_count}"
                                   for m in spec.media)
        elif "model_params" in spec.extra_fields:
            references = "none; `model_params` (" + code(MODEL_PARAMS_FIELDS) + ")"
        else:
            references = "none"
        rows.append([f"`{name}`", *("yes" if q in spec.qualities else "—" for q in qualities), references])
    return rows


def evolink_limits() -> str:
    """Markdown tables of what EvoLink accepts, from :mod:`handlers.domain.contract`."""
    qualities = list(dict.fromkeys(q for spec in MODELS.values() for q in spec.qualities))
    kinds = (IMAGE, VIDEO, AUDIO)
    defaults = ", ".join(f"`{k}` {json.dumps(v)}" for k, v in DEFAULTS.items())
    lines = ["### Models and qualities", ""]
    lines += table(["model", *(f"`{q}`" for q in qualities), "references"], _model_rows(qualities))
    lines += ["", "### Reference media (checked by `--probe`)", ""]
    lines += table(["limit", *(m.kind for m in kinds)], _media_rows(kinds))
    lines += ["", "### Request", ""]
    lines += table(["rule", "limit"], [
        ("body", f"JSON with URLs only (no Base64 or `data:`), ≤ {_number(REQUEST_BODY_MAX / _MB)} MB "
                 f"({_number(REQUEST_BODY_MAX)} bytes)"),
        ("`duration`", f"integer, {DURATION_MIN}{_TO}{DURATION_MAX} s"),
        ("`aspect_ratio`", code(ASPECT_RATIOS)),
        ("`prompt`", f"≤ {PROMPT_MAX_CJK_CHARS} CJK characters or {PROMPT_MAX_WORDS} words, one shared budget: "
                     f"`cjk / {PROMPT_MAX_CJK_CHARS} + words / {PROMPT_MAX_WORDS} ≤ 1`"),
        ("`callback_url`", f"https, ≤ {_number(CALLBACK_URL_MAX)} characters; set by the relay"),
        ("audio", "at least one image or video beside any audio"),
        ("defaults EvoLink applies", defaults),
    ])
    return "\n".join(lines) + "\n"
