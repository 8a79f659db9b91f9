"""handlers.media.checks: a video's facts against its request, one named check each."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

from handlers.media.checks import Check, check_facts, failed
from handlers.media.facts import MediaFacts, read_facts
from handlers.sandbox.media import render_result

FACTS = MediaFacts(duration=5.0, width=1280, height=720, fps=24.0, frames=120, video_codec="h264", has_audio=True,
                   audio_codec="aac", bitrate=2_000_000, size=1_250_000)


def named(checks: tuple[Check, ...]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def test_a_video_that_matches_its_request_passes_every_check() -> None:
    checks = check_facts(FACTS, {"duration": 5, "quality": "720p", "aspect_ratio": "16:9", "generate_audio": True})
    assert [c.as_dict() for c in checks] == [
        {"name": "duration", "ok": True, "expected": 5, "actual": 5.0},
        {"name": "resolution", "ok": True, "expected": "720p", "actual": "1280x720"},
        {"name": "aspect_ratio", "ok": True, "expected": "16:9", "actual": "16:9"},
        {"name": "audio", "ok": True, "expected": True, "actual": True},
    ]
    assert failed(checks) == []


def test_the_defaults_apply_when_the_request_leaves_them_out() -> None:
    """5 s, 720p, adaptive (no aspect check) and audio."""
    checks = named(check_facts(replace(FACTS, has_audio=False, audio_codec=None), {}))
    assert set(checks) == {"duration", "resolution", "audio"}
    assert checks["duration"].expected == 5 and checks["resolution"].expected == "720p"
    assert not checks["audio"].ok


@pytest.mark.parametrize(("fps", "duration", "ok"), [
    (24.0, 5.09, True), (24.0, 4.91, True), (24.0, 5.11, False),  # one frame is 0.0417 s: 0.1 s is the bound
    (5.0, 5.19, True), (5.0, 5.21, False),  # one frame is 0.2 s: a frame is the bound
])
def test_the_duration_may_be_off_by_a_frame_or_a_tenth_of_a_second(fps: float, duration: float, ok: bool) -> None:
    check = named(check_facts(replace(FACTS, fps=fps, duration=duration), {"duration": 5}))["duration"]
    assert check.ok is ok and check.actual == duration


@pytest.mark.parametrize(("quality", "width", "height", "ok"), [
    ("720p", 1112, 834, True), ("720p", 960, 960, True), ("480p", 864, 496, True), ("1080p", 1920, 1080, True),
    ("720p", 864, 496, False), ("1080p", 1280, 720, False), ("480p", 320, 240, False),
])
def test_the_resolution_is_the_pixel_count_the_quality_implies(quality: str, width: int, height: int,
                                                               ok: bool) -> None:
    check = named(check_facts(replace(FACTS, width=width, height=height), {"quality": quality}))["resolution"]
    assert (check.ok, check.expected, check.actual) == (ok, quality, f"{width}x{height}")


@pytest.mark.parametrize(("asked", "width", "height", "actual", "ok"), [
    ("4:3", 1112, 834, "4:3", True), ("9:16", 720, 1280, "9:16", True), ("21:9", 1470, 630, "21:9", True),
    ("9:16", 1280, 720, "16:9", False), ("1:1", 1000, 800, "1.25", False),
])
def test_the_aspect_ratio_is_checked_within_two_percent(asked: str, width: int, height: int, actual: str,
                                                        ok: bool) -> None:
    check = named(check_facts(replace(FACTS, width=width, height=height), {"aspect_ratio": asked}))["aspect_ratio"]
    assert (check.ok, check.expected, check.actual) == (ok, asked, actual)


def test_an_adaptive_aspect_ratio_is_not_checked() -> None:
    checks = named(check_facts(replace(FACTS, width=720, height=1280), {"aspect_ratio": "adaptive"}))
    assert "aspect_ratio" not in checks and checks["resolution"].ok


def test_audio_is_not_checked_when_the_request_asks_for_none() -> None:
    checks = named(check_facts(replace(FACTS, has_audio=False, audio_codec=None), {"generate_audio": False}))
    assert "audio" not in checks and failed(tuple(checks.values())) == []


def test_the_sandbox_video_for_a_request_passes_its_checks(tmp_path: Path) -> None:
    """A real file, decoded: what the sandbox renders for 480p 9:16 4 s with audio is what was asked."""
    path = render_result(duration=4, quality="480p", aspect_ratio="9:16", audio=True, cache_dir=tmp_path)
    facts = read_facts(io.BytesIO(path.read_bytes()))
    checks = check_facts(facts, {"duration": 4, "quality": "480p", "aspect_ratio": "9:16", "generate_audio": True})
    assert failed(checks) == [] and len(checks) == 4
