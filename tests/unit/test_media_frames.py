"""handlers.media.frames: the poster (a third in) and the last frame as JPEG at the video's size, with thumbnails."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from handlers.media.facts import UnplayableOutput
from handlers.media.frames import FRAME_ROLES, THUMBNAIL_WIDTH, extract_frames
from handlers.media.ranged import RangedFile
from tests.support.clips import HTML_PAGE, brightness, graded_clip, shown_brightness

SECONDS, FPS = 6, 12  # one frame is about 3 levels brighter than the one before
FRAMES = SECONDS * FPS


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each frame a flat grey one step brighter than the one before, a keyframe every second."""
    return graded_clip(tmp_path_factory.mktemp("frames") / "graded.mp4", seconds=SECONDS, width=640, height=360,
                       fps=FPS, gop=FPS)


def size_of(jpeg: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(jpeg)) as picture:
        assert picture.format == "JPEG"
        return picture.size


def test_the_poster_is_the_frame_a_third_of_the_way_in(clip: Path) -> None:
    frames = extract_frames(clip)
    assert frames.poster_at == pytest.approx(SECONDS / 3)
    assert brightness(frames.poster) == pytest.approx(shown_brightness(FRAMES // 3, FRAMES), abs=1.5)


def test_the_last_frame_is_the_video_s_last(clip: Path) -> None:
    frames = extract_frames(clip)
    assert frames.last_frame_at == pytest.approx(SECONDS - 1 / FPS, abs=1e-3)
    assert brightness(frames.last_frame) == pytest.approx(shown_brightness(FRAMES - 1, FRAMES), abs=1.5)


def test_pictures_are_at_the_video_s_size_and_thumbnails_320_wide(clip: Path) -> None:
    pictures = extract_frames(clip).pictures()
    assert list(pictures) == list(FRAME_ROLES)
    assert size_of(pictures["poster"]) == size_of(pictures["last-frame"]) == (640, 360)
    assert size_of(pictures["poster-thumbnail"]) == size_of(pictures["last-frame-thumbnail"]) == (THUMBNAIL_WIDTH,
                                                                                                  180)


def test_a_thumbnail_shows_the_same_picture(clip: Path) -> None:
    frames = extract_frames(clip)
    assert brightness(frames.poster_thumbnail) == pytest.approx(brightness(frames.poster), abs=2)


def test_videos_of_other_sizes_one_after_another_each_get_pictures_at_their_own_size(clip: Path,
                                                                                   tmp_path: Path) -> None:
    """A worker keeps its scalers between videos: a new size must set them up again, not reuse the last one."""
    small = graded_clip(tmp_path / "small.mp4", seconds=2, width=480, height=272, fps=FPS, gop=FPS)
    for path, size, thumbnail in ((clip, (640, 360), (THUMBNAIL_WIDTH, 180)), (small, (480, 272),
                                  (THUMBNAIL_WIDTH, 181)), (clip, (640, 360), (THUMBNAIL_WIDTH, 180))):
        frames = extract_frames(path)
        assert size_of(frames.last_frame) == size
        assert size_of(frames.last_frame_thumbnail) == thumbnail
        assert brightness(frames.last_frame_thumbnail) == pytest.approx(brightness(frames.last_frame), abs=2)


def test_frames_are_decoded_from_the_nearest_keyframe_not_from_the_start(tmp_path: Path) -> None:
    """A 60 s clip with a keyframe each second: both frames, read through byte ranges, cost a small part of it."""
    data = graded_clip(tmp_path / "long.mp4", seconds=60, fps=FPS, gop=FPS, noise=True).read_bytes()
    source = RangedFile(lambda start, length: data[start:start + length], len(data), block_size=4096)
    frames = extract_frames(source)
    assert frames.poster_at == pytest.approx(20.0) and frames.last_frame_at == pytest.approx(60 - 1 / FPS, abs=1e-3)
    assert source.bytes_fetched < len(data) / 4


def test_no_frames_come_out_of_a_web_page() -> None:
    with pytest.raises(UnplayableOutput, match="not a playable MP4"):
        extract_frames(io.BytesIO(HTML_PAGE))


def test_a_poster_in_the_last_group_of_pictures_comes_from_the_same_pass_as_the_last_frame(tmp_path: Path) -> None:
    """One keyframe for the whole clip (as the sandbox's videos have): the pass that reaches the last frame also
    yields the poster, so the bytes read and the frames shown are those of the two-pass reading."""
    data = graded_clip(tmp_path / "one-gop.mp4", seconds=SECONDS, fps=FPS, gop=FRAMES * 2).read_bytes()
    frames = extract_frames(io.BytesIO(data))
    assert frames.poster_at == pytest.approx(SECONDS / 3)
    assert brightness(frames.poster) == pytest.approx(shown_brightness(FRAMES // 3, FRAMES), abs=1.5)
    assert brightness(frames.last_frame) == pytest.approx(shown_brightness(FRAMES - 1, FRAMES), abs=1.5)
