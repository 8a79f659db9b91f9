"""A video's poster (the frame a third of the way in) and its last frame, as JPEG, with thumbnails.

Each picture is the decoded frame at the video's own size; each thumbnail is :data:`THUMBNAIL_WIDTH`
pixels wide with the picture's proportions. Frames are decoded from the nearest keyframe before them
(:class:`~handlers.media.facts.MediaFile`), never from the start of the file. Pillow is imported inside the
functions.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from handlers.media.facts import MediaFacts, MediaFile, MediaSource, open_media

if TYPE_CHECKING:
    import av.video.frame
    import av.video.reformatter
    import PIL.Image

__all__ = ["FRAME_ROLES", "JPEG_QUALITY", "POSTER_AT", "THUMBNAIL_WIDTH", "FrameSet", "describe_file",
           "extract_frames", "frames_of"]

POSTER_AT = 1 / 3
"""Where the poster is taken, as a fraction of the duration."""
THUMBNAIL_WIDTH = 320
JPEG_QUALITY = 85
FRAME_ROLES = ("poster", "poster-thumbnail", "last-frame", "last-frame-thumbnail")
"""The pictures of one video, by role, in the order :meth:`FrameSet.pictures` gives them."""


@dataclass(frozen=True, slots=True)
class FrameSet:
    """The JPEG bytes of each picture, and the times (seconds) of the two frames."""

    poster: bytes
    poster_thumbnail: bytes
    last_frame: bytes
    last_frame_thumbnail: bytes
    poster_at: float
    last_frame_at: float

    def pictures(self) -> dict[str, bytes]:
        """``{role: JPEG bytes}`` in the order of :data:`FRAME_ROLES`."""
        return dict(zip(FRAME_ROLES, (self.poster, self.poster_thumbnail, self.last_frame,
                                      self.last_frame_thumbnail), strict=True))


def frames_of(media: MediaFile) -> FrameSet:
    """The poster and last frame of an open video, each with its thumbnail."""
    poster = media.frame_at(media.facts.duration * POSTER_AT)
    last = media.last_frame()
    poster_jpegs, last_jpegs = _jpegs(poster), _jpegs(last)
    return FrameSet(poster=poster_jpegs[0], poster_thumbnail=poster_jpegs[1], last_frame=last_jpegs[0],
                    last_frame_thumbnail=last_jpegs[1], poster_at=round(poster.time or 0.0, 3),
                    last_frame_at=round(last.time or 0.0, 3))


def describe_file(source: MediaSource, size: int | None = None) -> tuple[MediaFacts, dict[str, bytes]]:
    """A playable MP4's facts and its pictures by role (:data:`FRAME_ROLES`), from one opening;
    :class:`~handlers.media.facts.UnplayableOutput` if it is not one."""
    with open_media(source, size=size, mark=POSTER_AT) as media:
        return media.facts, frames_of(media).pictures()


def extract_frames(source: MediaSource, *, size: int | None = None) -> FrameSet:
    """Open ``source`` (see :func:`~handlers.media.facts.open_media`) and take its frames."""
    with open_media(source, size=size, mark=POSTER_AT) as media:
        return frames_of(media)


def _jpegs(frame: av.video.frame.VideoFrame) -> tuple[bytes, bytes]:
    """The frame as JPEG at its size, and its thumbnail."""
    from av.video.reformatter import Interpolation

    picture_scaler, thumbnail_scaler = _scalers()
    height = max(1, round(frame.height * THUMBNAIL_WIDTH / frame.width))
    picture = _rgb(picture_scaler.reformat(frame, format="rgb24"))
    # FFmpeg's scaler makes the thumbnail from the decoded frame: a third of the CPU of resizing the picture.
    thumbnail = _rgb(thumbnail_scaler.reformat(frame, width=THUMBNAIL_WIDTH, height=height, format="rgb24",
                                               interpolation=Interpolation.BILINEAR))
    return _encoded(picture), _encoded(thumbnail)


_local = threading.local()


def _scalers() -> tuple[av.video.reformatter.VideoReformatter, av.video.reformatter.VideoReformatter]:
    """This thread's two scalers, one for pictures and one for thumbnails.

    Each keeps its FFmpeg scaling context while the size and format stay the same, so a worker sets one up per
    video size rather than two per frame (``VideoFrame.reformat`` starts from nothing on every call, and setting
    up a context costs more than converting a frame).
    """
    scalers = getattr(_local, "scalers", None)
    if scalers is None:
        from av.video.reformatter import VideoReformatter

        scalers = _local.scalers = (VideoReformatter(), VideoReformatter())
    return scalers


def _rgb(rgb: av.video.frame.VideoFrame) -> PIL.Image.Image:
    """A Pillow image over the frame's own plane, rows padded to its line size, without a copy."""
    from PIL import Image

    plane = rgb.planes[0]
    return Image.frombuffer("RGB", (rgb.width, rgb.height), plane,  # type: ignore[arg-type]  # any buffer does
                            "raw", "RGB", plane.line_size, 1)


def _encoded(picture: PIL.Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()
