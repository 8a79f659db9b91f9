"""handlers.sandbox.media: the files it makes are real, sized right and as long as asked."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image

from handlers.domain.contract import frame_size
from handlers.sandbox.media import (
    RESULT_FPS,
    MediaUnavailable,
    render_audio,
    render_image,
    render_result,
    render_video,
)


@dataclass(frozen=True)
class Probe:
    """What PyAV reports about a media file."""

    duration: float
    video_codec: str
    width: int
    height: int
    fps: Fraction
    pix_fmt: str
    video_seconds: float
    audio_codec: str | None
    audio_seconds: float | None


def seconds_of(duration: int | None, time_base: Fraction | None) -> float:
    """A stream or container duration in seconds; it must be known."""
    assert duration is not None
    assert time_base is not None
    return float(duration * time_base)


def probe(source: bytes | Path) -> Probe:
    with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "r") as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        return Probe(
            duration=seconds_of(container.duration, Fraction(1, av.time_base)),
            video_codec=video.codec_context.name,
            width=video.width,
            height=video.height,
            fps=Fraction(video.average_rate or 0),
            pix_fmt=str(video.codec_context.pix_fmt),
            video_seconds=seconds_of(video.duration, video.time_base),
            audio_codec=audio.codec_context.name if audio else None,
            audio_seconds=seconds_of(audio.duration, audio.time_base) if audio else None,
        )


def top_level_boxes(data: bytes) -> list[str]:
    """The ISO-BMFF box types at the top of an MP4/QuickTime file, in file order."""
    boxes: list[str] = []
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[offset + 8:offset + 16])
        boxes.append(kind.decode("latin-1"))
        if size == 0:
            break
        offset += size
    return boxes


def decoded_frames(data: bytes, *indices: int) -> list[bytes]:
    with av.open(io.BytesIO(data), "r") as container:
        frames = [bytes(f.planes[0]) for i, f in enumerate(container.decode(video=0))
                  if i in indices]
    return frames


# -- render_video ----------------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "fps"), [(2, 24), (3.3, 30), (1.51, 25), (0.01, 24)])
def test_video_duration_is_within_one_frame_of_seconds(seconds: float, fps: int) -> None:
    """Container and video stream both last `seconds`, give or take one frame."""
    result = probe(render_video(seconds=seconds, width=320, height=240, fps=fps))
    assert abs(result.duration - seconds) <= 1 / fps
    assert abs(result.video_seconds - seconds) <= 1 / fps
    assert result.fps == fps


def test_video_is_h264_yuv420p_with_an_aac_track_as_long_as_the_video() -> None:
    """With audio, the file holds H.264 yuv420p video and AAC audio of the same length."""
    result = probe(render_video(seconds=2, width=320, height=240))
    assert (result.video_codec, result.pix_fmt, result.audio_codec) == ("h264", "yuv420p", "aac")
    assert result.audio_seconds is not None
    assert abs(result.audio_seconds - result.video_seconds) <= 1 / 24


def test_video_without_audio_has_no_audio_stream() -> None:
    """audio=False leaves the audio stream out entirely."""
    assert probe(render_video(seconds=1, width=320, height=240, audio=False)).audio_codec is None


@pytest.mark.parametrize(("width", "height"), [(641, 361), (320, 241), (99, 100)])
def test_video_rounds_odd_sides_up_to_even(width: int, height: int) -> None:
    """yuv420p needs even sides: an odd width or height grows by one pixel."""
    result = probe(render_video(seconds=0.5, width=width, height=height, audio=False))
    assert (result.width, result.height) == (width + width % 2, height + height % 2)


def test_mov_container_is_quicktime_and_decodes() -> None:
    """container='mov' writes a QuickTime file ('qt  ' brand) that PyAV reads back."""
    data = render_video(seconds=1, width=320, height=240, container="mov")
    assert data[4:12] == b"ftypqt  "
    result = probe(data)
    assert (result.video_codec, result.audio_codec) == ("h264", "aac")


@pytest.mark.parametrize(("faststart", "first", "last"), [(True, "moov", "mdat"),
                                                          (False, "mdat", "moov")])
def test_faststart_decides_whether_moov_comes_before_mdat(faststart: bool, first: str,
                                                          last: str) -> None:
    """faststart=True puts the moov atom ahead of the media data; False leaves it at the end."""
    boxes = top_level_boxes(render_video(seconds=1, width=320, height=240, faststart=faststart))
    assert boxes[0] == "ftyp"
    assert boxes.index(first) < boxes.index(last)


def test_video_frames_visibly_change() -> None:
    """The picture moves: frames half a second apart differ."""
    first, later = decoded_frames(render_video(seconds=1, width=320, height=240), 0, 12)
    assert first != later


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"container": "avi"}, "container must be one of"),
    ({"seconds": 0}, "seconds must be positive"),
    ({"width": 0}, "width must be positive"),
    ({"fps": 0}, "fps must be positive"),
])
def test_video_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    """Unknown containers and non-positive sizes, durations or rates raise ValueError."""
    arguments: dict[str, object] = {"seconds": 1, "width": 320, "height": 240, **kwargs}
    with pytest.raises(ValueError, match=match):
        render_video(**arguments)  # type: ignore[arg-type]


# -- render_result ---------------------------------------------------------------------------


@pytest.mark.parametrize(("duration", "quality", "aspect_ratio"), [
    (4, "480p", "adaptive"),
    (1, "480p", "9:16"),
    (1, "480p", "1:1"),
    (1, "480p", "21:9"),
    (2, "720p", "16:9"),
])
def test_result_has_the_contract_frame_size_24_fps_and_the_duration(
        tmp_path: Path, duration: int, quality: str, aspect_ratio: str) -> None:
    """The sandbox output follows contract.frame_size (adaptive → 16:9) at 24 fps."""
    path = render_result(duration=duration, quality=quality, aspect_ratio=aspect_ratio,
                         audio=True, cache_dir=tmp_path)
    result = probe(path)
    expected = frame_size(quality, "16:9" if aspect_ratio == "adaptive" else aspect_ratio)
    assert (result.width, result.height) == expected
    assert result.fps == RESULT_FPS
    assert abs(result.duration - duration) <= 1 / RESULT_FPS
    assert (result.video_codec, result.audio_codec) == ("h264", "aac")


@pytest.mark.parametrize(("audio", "codec"), [(True, "aac"), (False, None)])
def test_result_audio_flag_decides_the_audio_stream(tmp_path: Path, audio: bool,
                                                    codec: str | None) -> None:
    """audio=True gives an AAC stream; audio=False gives none."""
    path = render_result(duration=1, quality="480p", aspect_ratio="16:9", audio=audio,
                         cache_dir=tmp_path)
    assert probe(path).audio_codec == codec


def test_result_is_encoded_once_and_then_served_from_the_cache(tmp_path: Path) -> None:
    """A second call returns the same file untouched (same inode and mtime): no re-encode."""
    first = render_result(duration=1, quality="480p", aspect_ratio="4:3", audio=True,
                          cache_dir=tmp_path)
    before = first.stat()
    second = render_result(duration=1, quality="480p", aspect_ratio="4:3", audio=True,
                           cache_dir=tmp_path)
    after = second.stat()
    assert second == first
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_result_combinations_get_their_own_files(tmp_path: Path) -> None:
    """Each (duration, quality, aspect_ratio, audio) has its own cached file."""
    paths = {render_result(duration=1, quality="480p", aspect_ratio=aspect, audio=audio,
                           cache_dir=tmp_path)
             for aspect in ("16:9", "1:1") for audio in (True, False)}
    assert len(paths) == 4


def test_result_creates_a_missing_cache_dir(tmp_path: Path) -> None:
    """cache_dir is created on first use."""
    path = render_result(duration=1, quality="480p", aspect_ratio="16:9", audio=False,
                         cache_dir=tmp_path / "a" / "b")
    assert path.parent == tmp_path / "a" / "b"
    assert path.is_file()


def test_concurrent_callers_share_one_complete_file(tmp_path: Path) -> None:
    """Threads asking at once all get the same whole file, encoded once, with no temp left."""
    barrier = threading.Barrier(6)
    seen: list[tuple[Path, int, float]] = []

    def call() -> None:
        barrier.wait()
        path = render_result(duration=1, quality="480p", aspect_ratio="16:9", audio=True,
                             cache_dir=tmp_path)
        seen.append((path, path.stat().st_ino, probe(path).duration))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 6
    assert len({(path, inode) for path, inode, _ in seen}) == 1
    assert all(abs(duration - 1) <= 1 / RESULT_FPS for _, _, duration in seen)
    assert [p.name for p in tmp_path.iterdir()] == [seen[0][0].name]


RACE_SCRIPT = """
import sys
from pathlib import Path
from handlers.sandbox.media import render_result
print(render_result(duration=1, quality="480p", aspect_ratio="1:1", audio=True,
                    cache_dir=Path(sys.argv[1])))
"""


def test_racing_processes_leave_one_complete_file(tmp_path: Path) -> None:
    """Processes encoding the same result at once publish one whole file and no temp files."""
    root = Path(__file__).resolve().parents[2]
    racers = [subprocess.Popen([sys.executable, "-c", RACE_SCRIPT, str(tmp_path)], cwd=root,
                               stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = {racer.communicate(timeout=60)[0].strip() for racer in racers}
    assert [racer.returncode for racer in racers] == [0, 0, 0]
    (path,) = outputs
    assert [p.name for p in tmp_path.iterdir()] == [Path(path).name]
    assert abs(probe(Path(path)).duration - 1) <= 1 / RESULT_FPS


def test_result_rejects_a_duration_below_one_second(tmp_path: Path) -> None:
    """A zero or negative duration is a ValueError, not an empty file."""
    with pytest.raises(ValueError, match="duration must be at least 1 second"):
        render_result(duration=0, quality="480p", aspect_ratio="16:9", audio=True,
                      cache_dir=tmp_path)


# -- render_image ----------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "pil_format"), [("png", "PNG"), ("jpeg", "JPEG"),
                                                 ("jpg", "JPEG"), ("webp", "WEBP")])
@pytest.mark.parametrize(("width", "height"), [(300, 300), (1280, 720), (401, 999)])
def test_image_has_the_size_and_format_asked_for(fmt: str, pil_format: str, width: int,
                                                 height: int) -> None:
    """Pillow reads back the requested format at exactly width x height."""
    with Image.open(io.BytesIO(render_image(width=width, height=height, fmt=fmt))) as image:
        assert (image.format, image.size) == (pil_format, (width, height))


def test_image_rejects_an_unknown_format() -> None:
    """Formats other than png, jpeg/jpg and webp raise ValueError."""
    with pytest.raises(ValueError, match="image format must be one of"):
        render_image(width=300, height=300, fmt="gif")


# -- render_audio ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
@pytest.mark.parametrize("seconds", [2, 3.7, 15])
def test_audio_duration_is_within_50_ms(fmt: str, seconds: float) -> None:
    """PyAV measures the WAV or MP3 clip within 50 ms of `seconds`."""
    with av.open(io.BytesIO(render_audio(seconds=seconds, fmt=fmt)), "r") as container:
        assert container.format.name == fmt
        measured = seconds_of(container.duration, Fraction(1, av.time_base))
    assert abs(measured - seconds) <= 0.05


@pytest.mark.parametrize("sample_rate", [22_050, 48_000])
def test_audio_uses_the_requested_sample_rate(sample_rate: int) -> None:
    """The clip's sample rate is the one asked for."""
    for fmt in ("wav", "mp3"):
        data = render_audio(seconds=2, fmt=fmt, sample_rate=sample_rate)
        with av.open(io.BytesIO(data), "r") as container:
            assert container.streams.audio[0].rate == sample_rate


def test_audio_rejects_an_unknown_format() -> None:
    """Formats other than wav and mp3 raise ValueError."""
    with pytest.raises(ValueError, match="audio format must be 'wav' or 'mp3'"):
        render_audio(seconds=2, fmt="ogg")


def test_media_unavailable_carries_a_code_and_the_encoders_tried() -> None:
    """The missing-encoder error is machine-readable: a stable code and the names tried."""
    error = MediaUnavailable("no mp3", wanted=("libmp3lame", "mp3"))
    assert (error.code, error.wanted) == ("media_unavailable", ("libmp3lame", "mp3"))
