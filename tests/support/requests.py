"""A valid request body to vary in validation tests, and the violations a body gets."""

from __future__ import annotations

from typing import Any

from handlers.provider.validation import validate_request

__all__ = ["R2V", "request_body", "violation_codes"]

R2V = "seedance-2.0-reference-to-video"


def request_body(**changes: Any) -> dict[str, Any]:
    """A valid multimodal reference-to-video body with ``changes`` applied (None deletes)."""
    body: dict[str, Any] = {
        "model": R2V,
        "prompt": "Use @video1's framing and @audio1 as music; keep @image1's palette.",
        "image_urls": ["https://example.com/ref1.jpg"],
        "video_urls": ["https://example.com/ref.mp4"],
        "audio_urls": ["https://example.com/bgm.mp3"],
        "duration": 10,
        "quality": "720p",
        "aspect_ratio": "16:9",
        "generate_audio": True,
        "content_filter": True,
        "callback_url": "https://relay.example.com/callbacks/abc",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def violation_codes(body: object, **options: Any) -> set[tuple[str, str]]:
    return {(v.field, v.code) for v in validate_request(body, **options)}
