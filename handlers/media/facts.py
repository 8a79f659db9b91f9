"""What a stored video is, read with PyAV from its container index and the frames decoded to prove it plays.

:func:`open_media` opens a file (a path, or a seekable file such as :class:`~handlers.media.ranged.RangedFile`)
as an MP4 and answers :class:`MediaFile`: its :attr:`~MediaFile.facts` come from the index (the ``moov``
box), and the file is proved playable by decoding its last frame, from the nearest keyframe before it. A
file that is not a playable MP4 raises :class:`UnplayableOutput` (code ``unplayable_output``): not a
container FFmpeg reads (an HTML error page, say), not the MP4 family, no video stream, no frame that
decodes, or cut short (its last decodable frame is more than two frames before the end the index gives).

PyAV is imported inside the functions, never at import time.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from handlers.base.errors import DownloadFailed
from handlers.media.ranged import RangedFile

if TYPE_CHECKING:
    import av.container
    import av.video.frame
    import av.video.stream

__all__ = ["MP4_FORMATS", "MediaFacts", "MediaFile", "MediaSource", "UnplayableOutput", "open_media", "read_facts"]

MediaSource = str | Path | BinaryIO | io.RawIOBase
MP4_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"})
"""The names FFmpeg gives the ISO base media family (``mov,mp4,m4a,3gp,3g2,mj2``)."""
_TRUNCATION_FRAMES = 2  # a last frame further than this from the index's end means the file was cut short


class UnplayableOutput(DownloadFailed):
    """A copied result is not a playable MP4. A failed copy: retried (``permanent`` False) until the
    attempts run out, then the job fails with this code."""

    code = "unplayable_output"

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message, permanent=permanent, code=self.code)


@dataclass(frozen=True, slots=True)
class MediaFacts:
    """One video file: ``duration`` in seconds (of its video stream), pixel size, frame rate, codecs, whether it
    carries audio, its mean ``bitrate`` in bits per second and its ``size`` in bytes."""

    duration: float
    width: int
    height: int
    fps: float
    frames: int
    video_codec: str
    has_audio: bool
    audio_codec: str | None
    bitrate: int
    size: int

    @property
    def frame_seconds(self) -> float:
        """How long one frame lasts."""
        return 1.0 / self.fps if self.fps > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MediaFacts:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


class MediaFile:
    """An open MP4: its facts, and frames decoded from the nearest keyframe before them."""

    def __init__(self, container: av.container.InputContainer, size: int, *, mark: float | None = None) -> None:
        self._container = container
        self._video = _video_stream(container)
        self._size = size
        self._last: av.video.frame.VideoFrame | None = None
        self.facts = self._read_facts()
        self._mark = None if mark is None else self.facts.duration * mark
        self._marked: av.video.frame.VideoFrame | None = None

    def frame_at(self, seconds: float) -> av.video.frame.VideoFrame:
        """The first frame shown at or after ``seconds`` (the last one, if the video ends before).

        The frame at the ``mark`` the file was opened with comes from the pass that decoded the last frame when
        it lay in that pass (the same group of pictures), so it is not decoded twice."""
        if self._marked is not None and seconds == self._mark:
            return self._marked
        stream = self._video
        half = self.facts.frame_seconds / 2
        self._seek(max(0.0, seconds))
        shown = None
        for frame in self._decoded():
            shown = frame
            if frame.time is not None and frame.time + half >= seconds:
                break
        if shown is None:
            raise UnplayableOutput(f"no frame of video stream {stream.index} decodes near {seconds:.3f} s")
        return shown

    def last_frame(self) -> av.video.frame.VideoFrame:
        """The video's last frame (decoded once, then kept)."""
        if self._last is None:
            self._seek(max(0.0, self.facts.duration - self.facts.frame_seconds))
            mark, half, first = self._mark, self.facts.frame_seconds / 2, True
            for frame in self._decoded():
                if first and (mark is None or frame.time is None or frame.time > mark):
                    mark = None  # the pass starts after the mark: the mark's frame is not in it
                first = False
                if mark is not None and self._marked is None and frame.time is not None and frame.time + half >= mark:
                    self._marked = frame
                self._last = frame
            if self._last is None:
                raise UnplayableOutput("no frame decodes at the end of the video")
        return self._last

    def _read_facts(self) -> MediaFacts:
        container, video = self._container, self._video
        context = video.codec_context
        fps = _rate(video)
        duration = _duration(container, video, fps)
        frames = video.frames or round(duration * fps)
        audio = container.streams.audio[0] if container.streams.audio else None
        facts = MediaFacts(
            duration=round(duration, 3), width=context.width, height=context.height, fps=round(fps, 3),
            frames=frames, video_codec=context.name, has_audio=audio is not None,
            audio_codec=None if audio is None else audio.codec_context.name,
            bitrate=round(self._size * 8 / duration) if duration > 0 else 0, size=self._size)
        if facts.width <= 0 or facts.height <= 0 or facts.frames <= 0 or facts.duration <= 0:
            raise UnplayableOutput(f"the video stream has {facts.frames} frames of {facts.width}x{facts.height} "
                                   f"over {facts.duration} s")
        return facts

    def check_complete(self) -> None:
        """Raise :class:`UnplayableOutput` unless the last frame decodes where the index says the video ends."""
        last = self.last_frame()
        end = self.facts.duration - self.facts.frame_seconds
        if last.time is not None and last.time < end - _TRUNCATION_FRAMES * self.facts.frame_seconds:
            raise UnplayableOutput(f"the file is cut short: its last frame decodes at {last.time:.3f} s of a "
                                   f"{self.facts.duration:.3f} s video")

    def _seek(self, seconds: float) -> None:
        stream = self._video
        start = stream.start_time or 0
        offset = start + int(Fraction(seconds).limit_denominator(1_000_000) / stream.time_base) \
            if stream.time_base else start
        self._container.seek(offset, stream=stream, backward=True, any_frame=False)

    def _decoded(self) -> Iterator[av.video.frame.VideoFrame]:
        import av

        try:
            yield from self._container.decode(self._video)
        except av.FFmpegError as exc:
            raise UnplayableOutput(f"the video does not decode: {exc.strerror or type(exc).__name__}") from exc


@contextmanager
def open_media(source: MediaSource, *, size: int | None = None, mark: float | None = None) -> Iterator[MediaFile]:
    """``source`` opened as a playable MP4 of ``size`` bytes (the file's size if not given); ``mark`` is a
    fraction of the duration whose frame will be asked for (see :meth:`MediaFile.frame_at`).

    :class:`UnplayableOutput` if it is not one; a storage error a :class:`RangedFile` met while FFmpeg read
    is raised as it is (the store failed, not the video).
    """
    import av

    total = _size_of(source) if size is None else size
    try:
        with av.open(_openable(source), mode="r") as container:
            _check_format(container)
            media = MediaFile(container, total, mark=mark)
            media.check_complete()
            yield media
    except av.FFmpegError as exc:
        _raise_failure(source, exc)
        raise UnplayableOutput(f"not a playable MP4: {exc.strerror or type(exc).__name__}") from exc
    except UnplayableOutput as exc:
        _raise_failure(source, exc)
        raise


def read_facts(source: MediaSource, *, size: int | None = None) -> MediaFacts:
    """The facts of a playable MP4 (see :func:`open_media`)."""
    with open_media(source, size=size) as media:
        return media.facts


# --- helpers -------------------------------------------------------------------------------------

def _openable(source: MediaSource) -> Any:
    return str(source) if isinstance(source, str | Path) else source


def _size_of(source: MediaSource) -> int:
    if isinstance(source, RangedFile):
        return source.size
    if isinstance(source, str | Path):
        return Path(source).stat().st_size
    position = source.tell()
    end = source.seek(0, 2)
    source.seek(position)
    return end


def _raise_failure(source: MediaSource, exc: BaseException) -> None:
    if isinstance(source, RangedFile) and source.failure is not None:
        raise source.failure from exc


def _check_format(container: av.container.InputContainer) -> None:
    names = set(container.format.name.split(","))
    if not names & MP4_FORMATS:
        raise UnplayableOutput(f"the file is {container.format.name!r}, not an MP4")


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first video stream, set to decode on the calling thread: a relay reads several videos at once on its
    workers, so FFmpeg's own decoding threads (started and stopped for every file) would only add work."""
    if not container.streams.video:
        raise UnplayableOutput("the file has no video stream")
    video = container.streams.video[0]
    video.codec_context.thread_count = 1
    return video


def _rate(video: av.video.stream.VideoStream) -> float:
    rate = video.average_rate or video.guessed_rate or video.base_rate
    return float(rate) if rate else 0.0


def _duration(container: av.container.InputContainer, video: av.video.stream.VideoStream, fps: float) -> float:
    """The video stream's duration; else its frame count over its rate; else the container's."""
    if video.duration and video.time_base:
        return float(video.duration * video.time_base)
    if video.frames and fps > 0:
        return video.frames / fps
    return container.duration / 1_000_000 if container.duration else 0.0
