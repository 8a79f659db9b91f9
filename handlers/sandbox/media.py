"""Real media for the sandbox and for tests: playable video, images and audio clips.

Everything here is a genuine file that FFmpeg (through PyAV) and Pillow can open; nothing
needs numpy.

* :func:`render_video` -- H.264 (libx264, yuv420p) in MP4 or QuickTime, with an optional
  AAC track carrying a quiet tone of the same length.
* :func:`render_result` -- the sandbox's output for a task: sized by
  :func:`handlers.domain.contract.frame_size`, 24 fps, encoded once per cache directory and
  published atomically.
* :func:`render_image` -- PNG, JPEG or WebP.
* :func:`render_audio` -- WAV (stdlib ``wave``) or MP3 (PyAV's LAME encoder); when the
  FFmpeg build has no MP3 encoder, :class:`MediaUnavailable` is raised.

Video frames are written straight into YUV planes: the dark background and the label are
drawn once with Pillow, and each frame copies that base and paints only the moving parts
(a sweeping bar and a frame counter), so the time goes to x264's ultrafast preset.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import sys
import tempfile
import threading
import wave
from array import array
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.codec.codec import UnknownCodecError
from PIL import Image, ImageDraw, ImageFont

from handlers.base.errors import RelayError
from handlers.domain.contract import frame_size

__all__ = [
    "AUDIO_SAMPLE_RATE",
    "RESULT_FPS",
    "MediaUnavailable",
    "render_audio",
    "render_image",
    "render_result",
    "render_video",
]

RESULT_FPS = 24
AUDIO_SAMPLE_RATE = 48_000  # of the AAC track inside videos

_CONTAINERS = ("mp4", "mov")
_X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "crf": "30"}
_MP3_ENCODERS = ("libmp3lame", "mp3")
_IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}

_BACKGROUND_YUV = (28, 140, 118)  # a dark slate blue
_BAR_LUMA = 200
_TEXT_LUMA = 235
_SWEEP_SECONDS = 2  # the bar crosses the frame once every two seconds
_TONE_PERIOD = 100  # samples per cycle: 480 Hz at 48 kHz, 441 Hz at 44.1 kHz
_TONE_LEVEL = 0.05  # about -26 dBFS
_TONE_CYCLE = [_TONE_LEVEL * math.sin(2 * math.pi * i / _TONE_PERIOD) for i in range(_TONE_PERIOD)]

_FontType = ImageFont.FreeTypeFont | ImageFont.ImageFont


class MediaUnavailable(RelayError):
    """The FFmpeg inside PyAV lacks an encoder a format needs (``wanted`` lists the names tried)."""

    code = "media_unavailable"

    def __init__(self, message: str, *, wanted: tuple[str, ...]) -> None:
        super().__init__(message)
        self.wanted = wanted


@dataclass(frozen=True, slots=True)
class _Clip:
    """What to encode; width and height are already even."""

    seconds: float
    width: int
    height: int
    fps: int
    audio: bool
    container: str
    label: str
    faststart: bool

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.fps))

    @property
    def audio_samples(self) -> int:
        return round(self.frames * AUDIO_SAMPLE_RATE / self.fps)


def render_video(*, seconds: float, width: int, height: int, fps: int = 24, audio: bool = True,
                 container: str = "mp4", label: str = "", faststart: bool = True) -> bytes:
    """Encode a moving test card as H.264 (plus an AAC tone when ``audio``) and return the file.

    yuv420p needs even sides, so an odd ``width`` or ``height`` is rounded up by one. The
    clip holds ``round(seconds * fps)`` frames (at least one), so its duration is within half
    a frame of ``seconds``; the audio track lasts exactly as long as the video. ``container``
    is ``"mp4"`` or ``"mov"`` (QuickTime). With ``faststart`` the moov atom is written at the
    front of the file; pass ``False`` for a moov-at-end file.
    """
    clip = _clip(seconds, width, height, fps, audio, container, label, faststart)
    with tempfile.TemporaryDirectory(prefix="sandbox-media-") as tmp:
        target = Path(tmp) / f"video.{clip.container}"
        _write_video(target, clip)
        return target.read_bytes()


def render_result(*, duration: int, quality: str, aspect_ratio: str, audio: bool,
                  cache_dir: Path) -> Path:
    """The sandbox's output for a task, encoded once per ``cache_dir`` and combination.

    The frame size comes from :func:`handlers.domain.contract.frame_size` (``adaptive`` → 16:9) at
    :data:`RESULT_FPS`. The file appears under its final name only when complete (temporary
    file + :func:`os.replace`), so concurrent callers, threads or processes, never read a
    partial file; within one process, callers asking for the same combination wait for a
    single encode, while separate processes may race to encode it and the last one wins.
    """
    if duration < 1:
        raise ValueError(f"duration must be at least 1 second, got {duration}")
    target = cache_dir / _result_name(duration, quality, aspect_ratio, audio)
    with _lock_for(target):
        if not target.exists():
            width, height = frame_size(quality, aspect_ratio)
            label = f"sandbox {quality} {aspect_ratio} {duration}s"
            clip = _clip(duration, width, height, RESULT_FPS, audio, "mp4", label, True)
            cache_dir.mkdir(parents=True, exist_ok=True)
            _write_atomically(target, clip)
    return target


def render_image(*, width: int, height: int, fmt: str = "png") -> bytes:
    """A test card of ``width`` by ``height`` pixels as PNG, JPEG (``jpeg`` or ``jpg``) or WebP."""
    pil_format = _IMAGE_FORMATS.get(fmt.lower())
    if pil_format is None:
        raise ValueError(f"image format must be one of {sorted(_IMAGE_FORMATS)}, got {fmt!r}")
    _require_positive(width=width, height=height)
    image = Image.new("RGB", (width, height), (24, 28, 40))
    draw = ImageDraw.Draw(image)
    border = max(1, min(width, height) // 50)
    draw.rectangle((0, 0, width - 1, height - 1), outline=(240, 160, 40), width=border)
    draw.text((border * 2, border * 2), f"{width}x{height}", fill=(235, 235, 235),
              font=_font(height))
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format)
    return buffer.getvalue()


def render_audio(*, seconds: float, fmt: str = "wav", sample_rate: int = 44_100) -> bytes:
    """A mono tone of ``round(seconds * sample_rate)`` samples as WAV (16-bit PCM) or MP3.

    MP3 needs an encoder in PyAV's FFmpeg (``libmp3lame``); without one this raises
    :class:`MediaUnavailable`.
    """
    if seconds <= 0 or sample_rate <= 0:
        raise ValueError(f"seconds and sample_rate must be positive, got {seconds}, {sample_rate}")
    count = round(seconds * sample_rate)
    if fmt == "wav":
        return _wav(count, sample_rate)
    if fmt == "mp3":
        return _mp3(count, sample_rate)
    raise ValueError(f"audio format must be 'wav' or 'mp3', got {fmt!r}")


# -- video -----------------------------------------------------------------------------------


def _clip(seconds: float, width: int, height: int, fps: int, audio: bool, container: str,
          label: str, faststart: bool) -> _Clip:
    if container not in _CONTAINERS:
        raise ValueError(f"container must be one of {list(_CONTAINERS)}, got {container!r}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    _require_positive(width=width, height=height, fps=fps)
    return _Clip(seconds, _even(width), _even(height), fps, audio, container, label, faststart)


def _write_video(target: Path, clip: _Clip) -> None:
    options = {"movflags": "faststart"} if clip.faststart else {}
    with av.open(str(target), "w", format=clip.container, container_options=options) as out:
        video = out.add_stream("libx264", rate=clip.fps, options=dict(_X264_OPTIONS))
        video.width, video.height, video.pix_fmt = clip.width, clip.height, "yuv420p"
        tone = _ToneTrack(out, clip) if clip.audio else None
        canvas = _canvas(clip)
        for index in range(clip.frames):
            out.mux(video.encode(canvas.frame(index)))
            if tone is not None:
                out.mux(tone.encode_until(index + 1))
        out.mux(video.encode(None))
        if tone is not None:
            out.mux(tone.finish())


@dataclass(frozen=True, slots=True)
class _Canvas:
    """The static picture as YUV planes, and where the moving parts go."""

    clip: _Clip
    stride: int
    luma: bytes
    chroma: tuple[bytes, bytes]
    font: _FontType
    counter_box: tuple[int, int, int, int]  # x, y, width, height
    bar_top: int
    bar_width: int

    def frame(self, index: int) -> av.VideoFrame:
        frame = av.VideoFrame(self.clip.width, self.clip.height, "yuv420p")
        luma = memoryview(frame.planes[0])
        luma[:] = self.luma
        memoryview(frame.planes[1])[:] = self.chroma[0]
        memoryview(frame.planes[2])[:] = self.chroma[1]
        self._paint_bar(luma, index)
        self._paint_counter(luma, index)
        frame.pts, frame.time_base = index, Fraction(1, self.clip.fps)
        return frame

    def _paint_bar(self, luma: memoryview, index: int) -> None:
        sweep = _SWEEP_SECONDS * self.clip.fps
        x = (index % sweep) * (self.clip.width - self.bar_width) // sweep
        row = bytes([_BAR_LUMA]) * self.bar_width
        for y in range(self.bar_top, self.clip.height):
            start = y * self.stride + x
            luma[start:start + self.bar_width] = row

    def _paint_counter(self, luma: memoryview, index: int) -> None:
        x, y, width, height = self.counter_box
        if width <= 0 or height <= 0:
            return
        patch = Image.new("L", (width, height), _BACKGROUND_YUV[0])
        text = f"{index + 1}/{self.clip.frames}"
        ImageDraw.Draw(patch).text((0, 0), text, fill=_TEXT_LUMA, font=self.font)
        pixels = patch.tobytes()
        for row in range(height):
            start = (y + row) * self.stride + x
            luma[start:start + width] = pixels[row * width:(row + 1) * width]


def _canvas(clip: _Clip) -> _Canvas:
    probe = av.VideoFrame(clip.width, clip.height, "yuv420p")
    stride = probe.planes[0].line_size
    font = _font(clip.height)
    margin = max(2, clip.height // 40)
    line = math.ceil(font.getbbox("0123456789/")[3]) + margin
    base = Image.new("L", (stride, clip.height), _BACKGROUND_YUV[0])  # padding included
    ImageDraw.Draw(base).text((margin, margin), clip.label, fill=_TEXT_LUMA, font=font)
    counter_width = math.ceil(font.getlength(f"{clip.frames}/{clip.frames}")) + margin
    box = (margin, margin + line, min(counter_width, clip.width - margin),
           min(line, clip.height - margin - line))
    chroma = tuple(bytes([value]) * len(memoryview(plane))
                   for value, plane in zip(_BACKGROUND_YUV[1:], probe.planes[1:], strict=True))
    bar_top = margin + 2 * line if margin + 2 * line < clip.height else 0
    return _Canvas(clip, stride, base.tobytes(), (chroma[0], chroma[1]), font, box, bar_top,
                   min(clip.width, max(2, clip.width // 32)))


def _font(height: int) -> _FontType:
    return ImageFont.load_default(size=max(10, height // 24))


# -- audio -----------------------------------------------------------------------------------


class _ToneTrack:
    """An AAC stream fed, a video frame at a time, with the tone samples up to that frame."""

    def __init__(self, out: av.container.OutputContainer, clip: _Clip) -> None:
        self._stream = _mono_stream(out, "aac", AUDIO_SAMPLE_RATE)
        self._fps = clip.fps
        self._total = clip.audio_samples
        self._pcm = _tone_f32(self._total)
        self._position = 0

    def encode_until(self, video_frames: int) -> list[av.Packet[AudioStream]]:
        end = min(self._total, round(video_frames * AUDIO_SAMPLE_RATE / self._fps))
        if end <= self._position:
            return []
        chunk = self._pcm[self._position * 4:end * 4]
        frame = _pcm_frame(chunk, self._position, AUDIO_SAMPLE_RATE)
        self._position = end
        return self._stream.encode(frame)

    def finish(self) -> list[av.Packet[AudioStream]]:
        return self._stream.encode(None)


def _mono_stream(out: av.container.OutputContainer, codec: str, rate: int) -> AudioStream:
    stream = out.add_stream(codec, rate=rate, layout="mono")
    if not isinstance(stream, AudioStream):
        raise MediaUnavailable(f"{codec!r} is not an audio encoder", wanted=(codec,))
    return stream


def _tone_f32(count: int) -> bytes:
    """``count`` mono float32 samples in native byte order (what FFmpeg's ``fltp`` expects)."""
    cycles = array("f", _TONE_CYCLE) * (count // _TONE_PERIOD + 1)
    return cycles[:count].tobytes()


def _pcm_frame(pcm: bytes, start: int, sample_rate: int) -> av.AudioFrame:
    frame = av.AudioFrame(format="fltp", layout="mono", samples=len(pcm) // 4)
    frame.planes[0].update(pcm)
    frame.sample_rate = sample_rate
    frame.pts, frame.time_base = start, Fraction(1, sample_rate)
    return frame


def _wav(count: int, sample_rate: int) -> bytes:
    cycle = array("h", (round(value * 32767) for value in _TONE_CYCLE))
    samples = (cycle * (count // _TONE_PERIOD + 1))[:count]
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


def _mp3(count: int, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as out:
        stream = _mono_stream(out, _mp3_encoder(), sample_rate)
        out.mux(stream.encode(_pcm_frame(_tone_f32(count), 0, sample_rate)))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def _mp3_encoder() -> str:
    """The first MP3 *encoder* present (``codecs_available`` also lists the decoder ``mp3``)."""
    for name in _MP3_ENCODERS:
        if name not in av.codecs_available:
            continue
        try:
            return av.Codec(name, "w").name
        except UnknownCodecError:
            continue
    raise MediaUnavailable("PyAV's FFmpeg has no MP3 encoder; use fmt='wav'",
                           wanted=_MP3_ENCODERS)


# -- cache and helpers -----------------------------------------------------------------------

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(target: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(target, threading.Lock())


def _result_name(duration: int, quality: str, aspect_ratio: str, audio: bool) -> str:
    key = repr((duration, quality, aspect_ratio, audio))
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    sound = "audio" if audio else "silent"
    return f"{duration}s-{_slug(quality)}-{_slug(aspect_ratio)}-{sound}-{digest}.mp4"


def _write_atomically(target: Path, clip: _Clip) -> None:
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".part")
    os.close(fd)
    temp = Path(name)
    try:
        _write_video(temp, clip)
        temp.chmod(0o644)  # mkstemp's 0600 would hide the file from other local users
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "x", text)[:24] or "x"


def _even(size: int) -> int:
    return size + size % 2


def _require_positive(**values: int) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
