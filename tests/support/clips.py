"""Small real MP4 files for the media tests, beside :func:`handlers.sandbox.media.render_video`: a clip with a
keyframe every ``gop`` frames whose every frame is told apart by its brightness, and files that are not
playable videos (cut short, audio only, a web page)."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
from av.video.stream import VideoStream
from PIL import Image

__all__ = ["HTML_PAGE", "audio_only_mp4", "brightness", "cut_short", "frame_luma", "graded_clip", "shown_brightness"]

HTML_PAGE = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
             b"<body><h1>502 Bad Gateway</h1><p>cloudfront</p></body></html>\n")
"""What a CDN answers instead of a video when its origin fails."""


def frame_luma(index: int, frames: int) -> int:
    """The brightness of frame ``index`` of a :func:`graded_clip` of ``frames`` frames: it rises steadily."""
    return 16 + round(200 * index / max(1, frames - 1))


def shown_brightness(index: int, frames: int) -> float:
    """How bright frame ``index`` shows once decoded to RGB (video luma 16-235 spreads over 0-255)."""
    return (frame_luma(index, frames) - 16) * 255 / 219


def graded_clip(path: Path, *, seconds: float, width: int = 320, height: int = 240, fps: int = 24,
                gop: int = 24, noise: bool = False) -> Path:
    """H.264 in MP4 (moov at the front), one keyframe every ``gop`` frames, frame ``i`` a flat grey of
    :func:`frame_luma` (with a fixed noise pattern added when ``noise``, so that frames weigh something)."""
    frames = max(1, round(seconds * fps))
    pattern = bytes((i * 7919) % 23 for i in range(width * height)) if noise else bytes(width * height)
    with av.open(str(path), "w", format="mp4", container_options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "g": str(gop),
                                                              "keyint_min": str(gop), "sc_threshold": "0"})
        assert isinstance(stream, VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            out.mux(stream.encode(_grey(index, frames, width, height, fps, pattern)))
        out.mux(stream.encode(None))
    return path


def _grey(index: int, frames: int, width: int, height: int, fps: int, pattern: bytes) -> av.VideoFrame:
    level = frame_luma(index, frames)
    frame = av.VideoFrame(width, height, "yuv420p")
    stride = frame.planes[0].line_size
    row = bytes(min(255, level + p) for p in pattern[:width]) if any(pattern) else bytes([level]) * width
    luma = b"".join(row + bytes(stride - width) for _ in range(height))
    frame.planes[0].update(luma)
    for plane in frame.planes[1:]:
        plane.update(bytes([128]) * plane.buffer_size)
    frame.pts, frame.time_base = index, Fraction(1, fps)
    return frame


def brightness(jpeg: bytes) -> float:
    """The mean brightness (0 to 255) of a JPEG picture."""
    with Image.open(io.BytesIO(jpeg)) as picture:
        grey = picture.convert("L")
        histogram = grey.histogram()
        return sum(level * count for level, count in enumerate(histogram)) / (grey.width * grey.height)


def cut_short(data: bytes, fraction: float = 0.5) -> bytes:
    """The first ``fraction`` of a file, as a download cut short leaves it."""
    return data[:round(len(data) * fraction)]


def audio_only_mp4(seconds: float = 1.0) -> bytes:
    """An MP4 holding only an AAC track: a real file, but no video."""
    buffer = io.BytesIO()
    rate = 48_000
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate, layout="mono")
        frame = av.AudioFrame(format="fltp", layout="mono", samples=round(seconds * rate))
        frame.planes[0].update(bytes(frame.planes[0].buffer_size))
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()
