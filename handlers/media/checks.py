"""A stored video's facts checked against the request that made it.

Each check is ``{name, ok, expected, actual}``:

* ``duration``: the requested seconds (default 5) against the video's; ok within one frame or 0.1 s,
  whichever is more.
* ``resolution``: the requested ``quality`` (default 720p) against the video's ``WIDTHxHEIGHT``; ok when the
  pixel count is within 10 % of the quality's.
* ``aspect_ratio``: the requested ratio (``16:9``…) against the video's (``16:9``, or ``1.25`` when it is no
  named ratio); ok within 2 % of that ratio or of EvoLink's frame for it at the quality. Not checked for
  ``adaptive`` (the default).
* ``audio``: ``true`` against whether the video has an audio stream; checked only when ``generate_audio`` is
  true (the default).

The sizes a quality implies are EvoLink's pixel table (:func:`handlers.domain.contract.frame_size`): at one
quality every aspect ratio has about the same number of pixels (720p: 1280x720, 960x960, 1112x834…).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from handlers.domain.contract import ASPECT_RATIOS, DEFAULTS, frame_size
from handlers.media.facts import MediaFacts

__all__ = ["ASPECT_TOLERANCE", "CHECK_NAMES", "DURATION_TOLERANCE", "PIXEL_TOLERANCE", "Check", "check_facts",
           "failed"]

CHECK_NAMES = ("duration", "resolution", "aspect_ratio", "audio")

DURATION_TOLERANCE = 0.1
"""Seconds a duration may be off when one frame lasts less."""
PIXEL_TOLERANCE = 0.10
ASPECT_TOLERANCE = 0.02
ADAPTIVE = "adaptive"
_DEFAULT_DURATION = 5


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    expected: Any
    actual: Any

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_facts(facts: MediaFacts, request: Mapping[str, Any]) -> tuple[Check, ...]:
    """Every check that applies to ``request``, in the order of the table above."""
    quality = str(request.get("quality", DEFAULTS["quality"]))
    checks = [_duration(facts, request), _resolution(facts, quality)]
    ratio = str(request.get("aspect_ratio", DEFAULTS["aspect_ratio"]))
    if ratio != ADAPTIVE and ratio in ASPECT_RATIOS:
        checks.append(_aspect_ratio(facts, ratio, quality))
    if request.get("generate_audio", DEFAULTS["generate_audio"]) is True:
        checks.append(Check("audio", facts.has_audio, True, facts.has_audio))
    return tuple(checks)


def failed(checks: Iterable[Check]) -> list[str]:
    """The names of the checks that did not pass."""
    return [check.name for check in checks if not check.ok]


def _duration(facts: MediaFacts, request: Mapping[str, Any]) -> Check:
    asked = request.get("duration", DEFAULTS["duration"])
    expected = asked if isinstance(asked, int | float) and not isinstance(asked, bool) else _DEFAULT_DURATION
    tolerance = max(facts.frame_seconds, DURATION_TOLERANCE)
    return Check("duration", abs(facts.duration - expected) <= tolerance + 1e-9, expected, facts.duration)


def _resolution(facts: MediaFacts, quality: str) -> Check:
    width, height = frame_size(quality, "16:9")
    pixels = facts.width * facts.height
    ok = abs(pixels / (width * height) - 1) <= PIXEL_TOLERANCE
    return Check("resolution", ok, quality, f"{facts.width}x{facts.height}")


def _aspect_ratio(facts: MediaFacts, ratio: str, quality: str) -> Check:
    actual = facts.width / facts.height
    return Check("aspect_ratio", _near(actual, quality, ratio), ratio, _ratio_name(actual, quality))


def _near(value: float, quality: str, ratio: str) -> bool:
    """Whether ``value`` is within tolerance of ``ratio`` itself or of EvoLink's frame for it at ``quality``
    (its 480p 9:16, 496x864, is 2 % off 9:16)."""
    named_width, named_height = (int(side) for side in ratio.split(":"))
    width, height = frame_size(quality, ratio)
    return any(abs(value / target - 1) <= ASPECT_TOLERANCE for target in (named_width / named_height, width / height))


def _ratio_name(value: float, quality: str) -> str:
    """The named ratio ``value`` is near, else ``value`` to three decimals."""
    for name in ASPECT_RATIOS:
        if name != ADAPTIVE and _near(value, quality, name):
            return name
    return f"{value:.3f}".rstrip("0").rstrip(".")
