"""handlers.media.assemble: parts joined in order, remuxed when they match, re-encoded when not; checked by
decoding the joined file."""

from __future__ import annotations

import array
import re
from pathlib import Path

import av
import pytest

from handlers.adapters.local.blobs import FolderBlobStore
from handlers.base.errors import NotFound
from handlers.media.assemble import REENCODE, REMUX, assemble, assemble_blobs
from handlers.media.facts import UnplayableOutput
from handlers.media.ranged import RangedFile
from handlers.sandbox.media import render_video
from tests.support.clips import HTML_PAGE


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("parts")
    made = {"a": dict(seconds=2), "b": dict(seconds=3), "silent": dict(seconds=1, audio=False),
            "quiet-b": dict(seconds=2, audio=False), "big": dict(seconds=2, width=640, height=480),
            "fast": dict(seconds=2, fps=30)}
    paths = {}
    for name, options in made.items():
        arguments = {"width": 320, "height": 240, "audio": True, **options}
        paths[name] = folder / f"{name}.mp4"
        paths[name].write_bytes(render_video(label=name, **arguments))
    return paths


def decoded_video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def audio_peaks(path: Path, spans: list[tuple[float, float]]) -> list[float]:
    """The loudest sample (of the first channel) within each span of seconds."""
    peaks = [0.0] * len(spans)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            samples = array.array("f", bytes(frame.planes[0]))[:frame.samples]
            start = frame.time or 0.0
            for i, (low, high) in enumerate(spans):
                if low <= start and start + frame.samples / frame.sample_rate <= high:
                    peaks[i] = max(peaks[i], *(abs(s) for s in samples))
    return peaks


def test_parts_that_match_are_remuxed_and_last_as_long_as_their_sum(parts: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "joined.mp4"
    assembly = assemble([parts["a"], parts["b"], parts["a"]], target)
    assert (assembly.method, assembly.reason) == (REMUX, None)
    assert assembly.facts.duration == pytest.approx(7.0, abs=1 / 24 * 3)
    assert assembly.facts.has_audio and (assembly.facts.width, assembly.facts.height) == (320, 240)
    assert decoded_video_frames(target) == 48 + 72 + 48
    assert [part.duration for part in assembly.parts] == [2.0, 3.0, 2.0]


def test_silent_parts_are_remuxed_into_a_silent_video(parts: dict[str, Path], tmp_path: Path) -> None:
    assembly = assemble([parts["silent"], parts["quiet-b"]], tmp_path / "joined.mp4")
    assert assembly.method == REMUX and not assembly.facts.has_audio
    assert assembly.facts.duration == pytest.approx(3.0, abs=2 / 24)


def test_a_part_without_audio_among_parts_with_it_is_re_encoded_with_silence_in_its_place(
        parts: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "joined.mp4"
    assembly = assemble([parts["a"], parts["silent"], parts["b"]], target)
    assert assembly.method == REENCODE and assembly.reason == "part 1 differs from part 0 in audio"
    assert assembly.facts.has_audio and assembly.facts.audio_codec == "aac"
    assert assembly.facts.duration == pytest.approx(6.0, abs=3 / 24)
    sound, silence, sound_again = audio_peaks(target, [(0.1, 1.9), (2.1, 2.9), (3.1, 5.9)])
    assert sound > 0.01 and silence < 0.001 and sound_again > 0.01


@pytest.mark.parametrize(("second", "reason"), [("big", "size"), ("fast", "frame rate")])
def test_parts_of_other_sizes_or_rates_are_re_encoded_at_the_first_part_s(
        parts: dict[str, Path], tmp_path: Path, second: str, reason: str) -> None:
    target = tmp_path / "joined.mp4"
    assembly = assemble([parts["a"], parts[second]], target)
    assert assembly.method == REENCODE and assembly.reason == f"part 1 differs from part 0 in {reason}"
    facts = assembly.facts
    assert (facts.width, facts.height, facts.fps, facts.video_codec) == (320, 240, 24.0, "h264")
    assert facts.duration == pytest.approx(4.0, abs=2 / 24) and decoded_video_frames(target) == 96


def test_parts_read_through_byte_ranges_join_as_files_do(parts: dict[str, Path], tmp_path: Path) -> None:
    sources = []
    for name in ("a", "b"):
        data = parts[name].read_bytes()
        sources.append(RangedFile(lambda start, length, data=data: data[start:start + length], len(data),
                                  block_size=8192))
    assembly = assemble(sources, tmp_path / "joined.mp4")
    assert assembly.method == REMUX and assembly.facts.duration == pytest.approx(5.0, abs=2 / 24)


def test_blob_keys_are_assembled_from_the_store(parts: dict[str, Path], tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path / "blobs")
    for name in ("a", "silent"):
        store.put_stream(f"jobs/{name}/output-0.mp4", [parts[name].read_bytes()], content_type="video/mp4")
    assembly = assemble_blobs(store, ["jobs/a/output-0.mp4", "jobs/silent/output-0.mp4"], tmp_path / "joined.mp4")
    assert assembly.method == REENCODE and assembly.facts.duration == pytest.approx(3.0, abs=2 / 24)
    with pytest.raises(NotFound, match=re.escape("jobs/none/output-0.mp4")):
        assemble_blobs(store, ["jobs/a/output-0.mp4", "jobs/none/output-0.mp4"], tmp_path / "again.mp4")


def test_an_unplayable_part_is_named(parts: dict[str, Path], tmp_path: Path) -> None:
    page = tmp_path / "page.mp4"
    page.write_bytes(HTML_PAGE)
    with pytest.raises(UnplayableOutput, match="part 1: not a playable MP4"):
        assemble([parts["a"], page], tmp_path / "joined.mp4")


def test_nothing_to_assemble_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no sources"):
        assemble([], tmp_path / "joined.mp4")
