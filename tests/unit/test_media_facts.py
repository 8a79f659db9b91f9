"""handlers.media.facts and .ranged: what a real MP4 is, read from its index through byte ranges; what is not one."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from handlers.base.errors import DownloadFailed, StorageError
from handlers.media.facts import MediaFacts, UnplayableOutput, open_media, read_facts
from handlers.media.ranged import RangedFile
from handlers.sandbox.media import render_audio, render_video
from tests.support.clips import HTML_PAGE, audio_only_mp4, cut_short, graded_clip


def ranged(data: bytes, **options: int) -> RangedFile:
    return RangedFile(lambda start, length: data[start:start + length], len(data), **options)


@pytest.fixture(scope="module")
def with_audio() -> bytes:
    return render_video(seconds=2, width=320, height=240, audio=True)


def test_the_facts_of_a_video_with_audio(with_audio: bytes) -> None:
    """Duration, size, rate, frames and codecs come from the file; bitrate is its bits over its seconds."""
    facts = read_facts(io.BytesIO(with_audio))
    assert facts == MediaFacts(duration=2.0, width=320, height=240, fps=24.0, frames=48, video_codec="h264",
                               has_audio=True, audio_codec="aac", bitrate=round(len(with_audio) * 8 / 2.0),
                               size=len(with_audio))


def test_a_video_without_audio_says_so() -> None:
    facts = read_facts(io.BytesIO(render_video(seconds=1, width=640, height=360, fps=30, audio=False)))
    assert (facts.has_audio, facts.audio_codec, facts.width, facts.height, facts.fps, facts.frames) == (
        False, None, 640, 360, 30.0, 30)


def test_facts_round_trip_through_their_mapping(with_audio: bytes) -> None:
    facts = read_facts(io.BytesIO(with_audio))
    assert MediaFacts.from_dict(facts.as_dict()) == facts


@pytest.mark.parametrize("faststart", [True, False], ids=["moov-first", "moov-last"])
def test_reading_the_facts_fetches_the_index_and_the_last_keyframes_not_the_whole_file(
        tmp_path: Path, faststart: bool) -> None:
    """A 60 s clip with a keyframe each second: the facts (proved by decoding the last frame) cost a small part."""
    clip = graded_clip(tmp_path / "long.mp4", seconds=60, gop=24, noise=True)
    data = clip.read_bytes() if faststart else _moov_last(clip)
    source = ranged(data, block_size=4096)
    assert read_facts(source).duration == 60.0
    assert source.bytes_fetched < len(data) / 4


def _moov_last(clip: Path) -> bytes:
    """The same clip remuxed with its index at the end."""
    import av

    out = io.BytesIO()
    with av.open(str(clip)) as source, av.open(out, "w", format="mp4") as target:
        stream = target.add_stream_from_template(source.streams.video[0], opaque=True)
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                target.mux(packet)
    data = out.getvalue()
    assert data.index(b"moov") > data.index(b"mdat")
    return data


@pytest.mark.parametrize(("body", "reason"), [
    (HTML_PAGE, "not a playable MP4"),
    (b"", "not a playable MP4"),
    (audio_only_mp4(), "no video stream"),
    (render_audio(seconds=1, fmt="wav"), "'wav', not an MP4"),
], ids=["html", "empty", "audio-only", "wav"])
def test_what_is_not_a_playable_mp4_is_refused_with_a_clear_code(body: bytes, reason: str) -> None:
    with pytest.raises(UnplayableOutput, match=reason) as raised:
        read_facts(io.BytesIO(body))
    assert raised.value.code == "unplayable_output" and isinstance(raised.value, DownloadFailed)
    assert raised.value.permanent is False  # a failed copy: the caller retries it


@pytest.mark.parametrize("faststart", [True, False], ids=["moov-first", "moov-last"])
def test_a_file_cut_short_is_unplayable(faststart: bool) -> None:
    data = render_video(seconds=2, width=320, height=240, faststart=faststart)
    with pytest.raises(UnplayableOutput, match=r"cut short|not a playable MP4|does not decode"):
        read_facts(io.BytesIO(cut_short(data)))


def test_a_store_that_fails_mid_read_raises_its_own_error_not_unplayable(with_audio: bytes) -> None:
    """FFmpeg swallows read errors; the storage error is raised all the same once it returns."""
    def flaky(start: int, length: int) -> bytes:
        if start > 0:
            raise StorageError("the bucket is unreachable", code="read_failed")
        return with_audio[start:start + length]

    with pytest.raises(StorageError, match="unreachable"):
        read_facts(RangedFile(flaky, len(with_audio), block_size=4096))


def test_an_open_video_decodes_the_frame_asked_for(tmp_path: Path) -> None:
    clip = graded_clip(tmp_path / "clip.mp4", seconds=4, gop=24)
    with open_media(clip) as media:
        assert media.frame_at(2.0).time == pytest.approx(2.0)
        assert media.last_frame().time == pytest.approx(4.0 - 1 / 24)


# --- RangedFile ----------------------------------------------------------------------------------

def test_a_ranged_file_reads_and_seeks_like_a_file() -> None:
    data = bytes(range(256)) * 40
    source = ranged(data, block_size=100)
    assert source.read(10) == data[:10]
    assert source.seek(-5, io.SEEK_END) == len(data) - 5 and source.read() == data[-5:]
    assert source.seek(250) == 250 and source.read(120) == data[250:370]
    assert source.seek(10, io.SEEK_CUR) == 380 and source.tell() == 380
    assert source.read(0) == b"" and source.seek(len(data) + 10) == len(data) + 10 and source.read(4) == b""


def test_a_ranged_file_fetches_each_block_once_while_it_is_cached() -> None:
    data = bytes(1000)
    source = ranged(data, block_size=100, cached_blocks=2)
    for _ in range(3):
        source.seek(0)
        source.read(150)
    assert source.requests == 2 and source.bytes_fetched == 200
    source.seek(500)
    source.read(1)
    source.seek(0)
    source.read(1)  # block 0 was the least recently used: fetched again
    assert source.requests == 4


def test_a_ranged_file_refuses_a_bad_seek_or_size() -> None:
    with pytest.raises(ValueError, match="whence"):
        ranged(b"abc").seek(0, 7)
    with pytest.raises(ValueError, match="negative position"):
        ranged(b"abc").seek(-1)
    with pytest.raises(ValueError, match="block_size"):
        ranged(b"abc", block_size=0)
