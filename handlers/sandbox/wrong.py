"""Wrong videos on purpose: what the sandbox renders instead of the request when a task is told to miss it.

``SANDBOX_WRONG_OUTPUT_RATE`` picks the tasks; ``SANDBOX_WRONG_OUTPUT`` lists how they miss, in turn:

* ``duration``: two seconds longer than asked;
* ``resolution``: another quality's frame size (480p for any other quality, 720p for 480p);
* ``audio``: no audio track although ``generate_audio`` is true (a task that asked for none gets the
  ``duration`` miss instead).

The video is still a real, playable MP4: only the relay's checks (``RELAY_OUTPUT_CHECKS``) can tell.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["WRONG_KINDS", "Render", "wrong_kinds", "wrong_render"]

WRONG_KINDS = ("duration", "resolution", "audio")
_EXTRA_SECONDS = 2


@dataclass(frozen=True, slots=True)
class Render:
    """What to encode for a task."""

    duration: int
    quality: str
    aspect_ratio: str
    audio: bool


def wrong_kinds(raw: str) -> tuple[str, ...]:
    """The comma-separated kinds of ``raw`` (every kind when it names none)."""
    return tuple(kind.strip() for kind in raw.split(",") if kind.strip()) or WRONG_KINDS


def wrong_render(asked: Render, kind: str | None) -> Render:
    """What the sandbox renders for a request asking ``asked``, missing it as ``kind`` says (``None``: it does not)."""
    if kind == "audio" and asked.audio:
        return replace(asked, audio=False)
    if kind == "resolution":
        return replace(asked, quality="720p" if asked.quality == "480p" else "480p")
    if kind is None:
        return asked
    return replace(asked, duration=asked.duration + _EXTRA_SECONDS)
