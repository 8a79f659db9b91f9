"""Content sniffing: a file's first bytes name its type, whatever it was called."""

from __future__ import annotations

import pytest

from handlers.base.errors import UnsupportedMediaType
from handlers.domain.sniff import SNIFF_BYTES, sniff
from handlers.sandbox.media import render_audio, render_image, render_video
from handlers.usecases.uploads import MismatchedMedia, check_bytes


@pytest.mark.parametrize(("data", "expected"), [
    (render_image(width=64, height=64, fmt="png"), "image/png"),
    (render_image(width=64, height=64, fmt="jpeg"), "image/jpeg"),
    (render_image(width=64, height=64, fmt="webp"), "image/webp"),
    (render_audio(seconds=0.5), "audio/wav"),
    (render_audio(seconds=0.5, fmt="mp3"), "audio/mpeg"),
    (render_video(seconds=1, width=160, height=120, audio=False), "video/mp4"),
])
def test_real_files_are_recognised_from_their_first_bytes(data: bytes, expected: str) -> None:
    assert sniff(data[:SNIFF_BYTES]) == expected


@pytest.mark.parametrize(("head", "expected"), [
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "video/quicktime"),
    (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "video/quicktime"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "video/mp4"),
    (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "audio/mp4"),
    (b"\xff\xfb\x90\x64\x00", "audio/mpeg"),
    (b"GIF89a\x01\x00", "image/gif"),
    (b"%PDF-1.7\n", "application/pdf"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "video/x-msvideo"),
    (b"hello, world", None),
    (b"", None),
])
def test_signatures(head: bytes, expected: str | None) -> None:
    assert sniff(head) == expected


@pytest.mark.parametrize(("declared", "head"), [
    ("video/mp4", b"\x00\x00\x00\x14ftypqt  "),  # MP4 and QuickTime are one container family
    ("video/quicktime", b"\x00\x00\x00\x20ftypisom"),
    ("audio/x-wav", b"RIFF\x00\x00\x00\x00WAVEfmt "),
    ("audio/mp3", b"ID3\x04\x00"),
    ("image/PNG; charset=binary", b"\x89PNG\r\n\x1a\n"),
])
def test_declared_aliases_and_one_family_are_accepted(declared: str, head: bytes) -> None:
    check_bytes(declared, head)


def test_a_mismatch_names_both_types_and_is_a_415_error() -> None:
    with pytest.raises(MismatchedMedia) as caught:
        check_bytes("video/mp4", b"\x89PNG\r\n\x1a\n")
    assert isinstance(caught.value, UnsupportedMediaType)
    assert caught.value.as_dict()["declared"] == "video/mp4" and caught.value.as_dict()["detected"] == "image/png"
