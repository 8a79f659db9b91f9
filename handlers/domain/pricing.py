"""What a job costs before it runs: EvoLink's billing rules over a table of credits per second.

EvoLink bills per second of output ``duration``, at a rate set by the model's tier (standard,
fast, mini) and the quality. A request with reference videos is billed at the lower "with
video input" rate, on the output seconds plus the input seconds, the input counting at least
as long as the output::

    (max(input video seconds, output seconds) + output seconds) x with-video rate

``content_filter: false`` multiplies the whole by 1.1; generated audio is free. Failed tasks
are not billed. :func:`estimate` applies these rules to a request, given the length of each
reference video where it is known; an unknown length is taken at the most the rules allow
(15 s, the total every reference video may add up to) and said so in the estimate's
``assumptions``.

:data:`DEFAULT_PRICE_TABLE` carries a date and a source for every figure (``docs/costs.md``);
:func:`load_price_table` reads an operator's replacement (``RELAY_PRICE_TABLE``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handlers.base.errors import ConfigurationError, InvalidRequest
from handlers.base.jsonbody import parse_object
from handlers.domain.contract import DEFAULTS, FAMILIES, MODELS, QUALITIES, VIDEO

__all__ = [
    "CONTENT_FILTER_OFF",
    "DEFAULT_PRICE_TABLE",
    "UNKNOWN_VIDEO_SECONDS",
    "Estimate",
    "PriceTable",
    "Rate",
    "estimate",
    "load_price_table",
]

CONTENT_FILTER_OFF = 1.1  # ``content_filter: false`` bills x1.1
UNKNOWN_VIDEO_SECONDS = VIDEO.max_total_seconds  # a reference video's length when it cannot be read: the worst case


@dataclass(frozen=True, slots=True)
class Rate:
    """Credits per second of output for one model family and quality, without and with reference videos."""

    credits: float
    with_video: float
    date: str = ""
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"rate": self.credits, "with_video_rate": self.with_video}
        return entry | {k: v for k, v in (("date", self.date), ("source", self.source)) if v}


@dataclass(frozen=True, slots=True)
class PriceTable:
    """``rates[family][quality]``: every family of :data:`~handlers.domain.contract.FAMILIES`, each quality it
    offers."""

    rates: Mapping[str, Mapping[str, Rate]]
    content_filter_off: float = CONTENT_FILTER_OFF
    origin: str = "the default table"

    def rate(self, model: str, quality: str) -> Rate:
        """The rate of ``model`` at ``quality`` (both as the validator accepts them)."""
        return self.rates[MODELS[model].family][quality]

    def as_dict(self) -> dict[str, Any]:
        """The table in the ``RELAY_PRICE_TABLE`` file format (:func:`load_price_table` reads it back)."""
        return {"content_filter_off": self.content_filter_off,
                "families": {family: {q: r.as_dict() for q, r in rates.items()}
                             for family, rates in self.rates.items()}}


@dataclass(frozen=True, slots=True)
class Estimate:
    """Credits a request should cost, line by line, and what had to be assumed to say so."""

    credits: float
    breakdown: list[dict[str, Any]] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"credits": self.credits, "breakdown": [dict(line) for line in self.breakdown],
                "assumptions": list(self.assumptions)}


# --- the default table --------------------------------------------------------------------------
# Anchor: the seed document's example task reserves 60 credits for 10 s of 720p, 6 credits a second.
# The other figures keep EvoLink's own ratios: its older gateway docs priced standard and fast at 480p
# and 720p in dollars a second; where they have no figure (1080p, 4k, mini), Volcengine's list prices
# per token (as resold by laozhang.ai, 2026-10-14) times the frame's pixels give the ratio.
_ANCHOR, _LEGACY_720 = 6.0, 0.1985  # credits/s and legacy $/s of standard 720p without video input
_SEED_DATE, _VOLC_DATE = "2026-03-30", "2026-10-14"
_SEED = "seed document: 60 credits reserved for 10 s of 720p (example task of 2026-03-30)"
_LEGACY = "6 credits/s (seed) x EvoLink's legacy $/s ratio: ${:.4f} / $0.1985, with video input ${:.4f} / $0.1985"
_VOLC = "{} (Volcengine list prices as resold at docs.laozhang.ai/en/announcements/seedance-pricing-2026-10)"
_PIXELS_1080, _PIXELS_4K = 1920 * 1080 / (1280 * 720), 3840 * 2160 / (1280 * 720)
_TOKEN_1080, _TOKEN_1080_VIDEO = 8.74 / 7.88, 5.31 / 4.80  # $/1M tokens at 1080p over 480p-720p
_MINI = 3.94 / 7.88  # mini's $/1M tokens over standard's (2.40 / 4.80 with video input: the same)
_MINI_HOW = "3.94 / 7.88 (mini's token price over standard's; 2.40 / 4.80 with video input)"


def _legacy(plain: float, with_video: float) -> Rate:
    """A figure from EvoLink's legacy dollar prices, scaled to the seed's 6 credits/s for standard 720p."""
    return Rate(round(_ANCHOR * plain / _LEGACY_720, 2), round(_ANCHOR * with_video / _LEGACY_720, 2),
                _SEED_DATE, _LEGACY.format(plain, with_video))


def _derived(plain: float, with_video: float, factor: float, factor_video: float, how: str) -> Rate:
    """A figure EvoLink never published: a legacy figure times Volcengine's price ratio."""
    return Rate(round(_ANCHOR * plain / _LEGACY_720 * factor, 2),
                round(_ANCHOR * with_video / _LEGACY_720 * factor_video, 2), _VOLC_DATE, _VOLC.format(how))


DEFAULT_PRICE_TABLE = PriceTable({
    "standard": {
        "480p": _legacy(0.0919, 0.0560),
        "720p": Rate(_ANCHOR, round(_ANCHOR * 0.1209 / _LEGACY_720, 2), _SEED_DATE,
                     _SEED + "; with video input x EvoLink's legacy ratio $0.1209 / $0.1985"),
        "1080p": _derived(0.1985, 0.1209, _PIXELS_1080 * _TOKEN_1080, _PIXELS_1080 * _TOKEN_1080_VIDEO,
                          "standard 720p x 2.25 (1080p's pixels) x 8.74 / 7.88 (1080p's token price over 720p's; "
                          "5.31 / 4.80 with video input)"),
        "4k": _derived(0.1985, 0.1209, _PIXELS_4K * _TOKEN_1080, _PIXELS_4K * _TOKEN_1080_VIDEO,
                       "standard 720p x 9 (4k's pixels) x 1080p's token price ratio (no 4k price is published)"),
    },
    "fast": {"480p": _legacy(0.0745, 0.0443), "720p": _legacy(0.1608, 0.0957)},
    "mini": {
        "480p": _derived(0.0919, 0.0560, _MINI, _MINI, f"standard 480p x {_MINI_HOW}"),
        "720p": _derived(0.1985, 0.1209, _MINI, _MINI, f"standard 720p x {_MINI_HOW}"),
    },
})


# --- estimating -----------------------------------------------------------------------------------


def _line(what: str, seconds: float | None, rate: float | None, credits: float) -> dict[str, Any]:
    return {"what": what, "seconds": seconds, "rate": rate, "credits": round(credits, 4)}


def _seconds(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


def _unread(indices: list[int], seconds: float) -> str:
    """The assumption for reference videos (numbered from 1) whose length could not be read."""
    fields = ", ".join(f"video_urls[{i - 1}]" for i in indices)
    if len(indices) == 1:
        who, amount = f"reference video {indices[0]} ({fields})", f"{seconds:g} s"
    else:
        numbers = f"{', '.join(map(str, indices[:-1]))} and {indices[-1]}"
        who, amount = f"reference videos {numbers} ({fields})", f"{seconds:g} s together"
    return (f"{who} could not be read; billed as {amount}, the most the rules allow "
            f"({UNKNOWN_VIDEO_SECONDS:g} s of reference video in all)")


def _input_seconds(videos: Sequence[float | None]) -> tuple[float, list[str]]:
    """The input seconds the rules bill, and the assumption made for videos of unknown length."""
    known = math.fsum(s for s in videos if s is not None)
    unread = [index for index, seconds in enumerate(videos, start=1) if seconds is None]
    if not unread:
        return known, []
    total = max(known, min(UNKNOWN_VIDEO_SECONDS, known + UNKNOWN_VIDEO_SECONDS * len(unread)))
    return total, [_unread(unread, round(total - known, 3))]


def _video_lines(duration: int, rate: Rate, videos: Sequence[float | None]) -> tuple[list[dict[str, Any]],
                                                                                     list[str]]:
    given, assumptions = _input_seconds(videos)
    billed = max(given, duration)
    input_what = f"reference video input: max(input {_seconds(given)} s, output {duration} s)"
    return [
        _line("output video, with video input rate", duration, rate.with_video, duration * rate.with_video),
        _line(input_what, _seconds(billed), rate.with_video, billed * rate.with_video),
    ], assumptions


def _extras(request: Mapping[str, Any], subtotal: float, table: PriceTable) -> tuple[list[dict[str, Any]],
                                                                                      list[str]]:
    lines, assumptions = [], []
    if request.get("content_filter", DEFAULTS["content_filter"]) is False:
        surcharge = subtotal * (table.content_filter_off - 1.0)
        lines.append(_line(f"content_filter false: x{table.content_filter_off:g}", None, None, surcharge))
    if request.get("generate_audio", DEFAULTS["generate_audio"]) is not False:
        lines.append(_line("generated audio (free)", int(request.get("duration", DEFAULTS["duration"])), 0.0, 0.0))
    params = request.get("model_params")
    if isinstance(params, Mapping) and params.get("web_search") is True:
        assumptions.append("model_params.web_search is on: EvoLink bills each search it makes on top; "
                           "searches are not in this estimate")
    return lines, assumptions


def estimate(request: Mapping[str, Any], input_video_seconds: Sequence[float | None],
             table: PriceTable = DEFAULT_PRICE_TABLE) -> Estimate:
    """The credits ``request`` (a valid EvoLink body) should cost.

    ``input_video_seconds`` holds the length of each ``video_urls`` entry, ``None`` where it is
    unknown (taken as the worst case, :data:`UNKNOWN_VIDEO_SECONDS`). Its length must match the
    request's ``video_urls``.
    """
    model = str(request["model"])
    duration = int(request.get("duration", DEFAULTS["duration"]))
    quality = str(request.get("quality", DEFAULTS["quality"]))
    videos = request.get("video_urls") or []
    if len(input_video_seconds) != len(videos):
        raise ValueError(f"{len(videos)} reference videos but {len(input_video_seconds)} lengths")
    rate = table.rate(model, quality)
    if videos:
        lines, assumptions = _video_lines(duration, rate, input_video_seconds)
    else:
        lines, assumptions = [_line("output video", duration, rate.credits, duration * rate.credits)], []
    extra_lines, extra_assumptions = _extras(request, sum(line["credits"] for line in lines), table)
    lines += extra_lines
    total = math.fsum(line["credits"] for line in lines)
    return Estimate(round(total, 2), lines, assumptions + extra_assumptions)


# --- reading a table ------------------------------------------------------------------------------

_ENTRY_KEYS = ("rate", "with_video_rate", "date", "source")
_TOP_KEYS = ("families", "content_filter_off", "date", "source")


def _refuse(path: Path, entry: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"price table {path}: {entry} {problem}" if entry else f"price table {path}: {problem}")


def _number(path: Path, entry: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _refuse(path, entry, f"must be a number of credits per second, got {value!r:.40}")
    if value < 0:
        raise _refuse(path, entry, f"must not be negative, got {value!r}")
    return float(value)


def _object(path: Path, entry: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _refuse(path, entry, f"must be a JSON object, got {type(value).__name__}")
    return value


def _rate(path: Path, entry: str, raw: object) -> Rate:
    fields = _object(path, entry, raw)
    unknown = [key for key in fields if key not in _ENTRY_KEYS]
    if unknown:
        raise _refuse(path, f"{entry}.{unknown[0]}", f"is not a price table field; use {', '.join(_ENTRY_KEYS)}")
    for key in ("rate", "with_video_rate"):
        if key not in fields:
            raise _refuse(path, entry, f"has no {key}")
    return Rate(_number(path, f"{entry}.rate", fields["rate"]),
                _number(path, f"{entry}.with_video_rate", fields["with_video_rate"]),
                str(fields.get("date", "")), str(fields.get("source", "")))


def _family(path: Path, family: str, raw: object) -> dict[str, Rate]:
    qualities = _object(path, f"families.{family}", raw)
    wanted = QUALITIES[family]
    for quality in qualities:
        if quality not in wanted:
            raise _refuse(path, f"families.{family}.{quality}", f"is not a quality {family} models offer; "
                          f"they offer {', '.join(wanted)}")
    for quality in wanted:
        if quality not in qualities:
            raise _refuse(path, f"families.{family}", f"has no {quality} entry; {family} needs {', '.join(wanted)}")
    return {q: _rate(path, f"families.{family}.{q}", qualities[q]) for q in wanted}


def _families(path: Path, raw: object) -> dict[str, dict[str, Rate]]:
    families = _object(path, "families", raw)
    for family in families:
        if family not in FAMILIES:
            raise _refuse(path, f"families.{family}", f"is not a model family; the families are {', '.join(FAMILIES)}")
    for family in FAMILIES:
        if family not in families:
            raise _refuse(path, "families", f"has no {family} entry; a price table needs {', '.join(FAMILIES)}")
    return {family: _family(path, family, families[family]) for family in FAMILIES}


def _parse(path: Path, raw: bytes) -> PriceTable:
    try:
        document = parse_object(raw, what="the file", strict=True)
    except InvalidRequest as exc:
        raise _refuse(path, "", exc.violations[0].message) from exc
    unknown = [key for key in document if key not in _TOP_KEYS]
    if unknown:
        raise _refuse(path, unknown[0], f"is not a price table field; use {', '.join(_TOP_KEYS)}")
    if "families" not in document:
        raise _refuse(path, "families", f"is missing; a price table needs families {', '.join(FAMILIES)}")
    multiplier = _number(path, "content_filter_off", document.get("content_filter_off", CONTENT_FILTER_OFF))
    return PriceTable(_families(path, document["families"]), multiplier, str(path))


def load_price_table(path: Path | str) -> PriceTable:
    """The table in the JSON file at ``path``; ``ConfigurationError`` (one line naming the file and the
    entry) when it cannot be read, is not valid JSON, lacks a family or quality, or has a rate that is
    negative or not a number. The format is :meth:`PriceTable.as_dict`'s."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"price table {path}: cannot be read ({exc.strerror or exc})") from exc
    return _parse(path, raw)
