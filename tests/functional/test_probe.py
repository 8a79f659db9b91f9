"""The preflight probe against real media served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from handlers.net.netguard import USER_AGENT, AddressPolicy
from handlers.provider.probe import MediaInfo, ProbeReport, probe_request
from handlers.sandbox.media import render_audio, render_image, render_video
from tests.support.media_server import MediaServer

MB = 1024 * 1024


def _boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """Top-level MP4 boxes as (type, start, end)."""
    found, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        size = size or len(data) - offset
        found.append((kind, offset, offset + size))
        offset += size
    return found


def _pad_mdat(data: bytes, extra: int) -> bytes:
    """Grow the mdat box by ``extra`` unreferenced bytes; sample offsets stay valid."""
    kind, start, end = next(box for box in _boxes(data) if box[0] == b"mdat")
    size = struct.unpack(">I", data[start:start + 4])[0]
    assert kind == b"mdat"
    assert size == end - start, "expects a 32-bit mdat size"
    header = struct.pack(">I", size + extra) + data[start + 4:start + 8]
    return data[:start] + header + data[start + 8:end] + bytes(extra) + data[end:]


@pytest.fixture(scope="module")
def server() -> Iterator[MediaServer]:
    """One server with every test file; rendering real media once per module."""
    image = render_image
    with MediaServer() as running:
        running.add("/ok.png", image(width=1280, height=720), content_type="image/png")
        running.add("/ok.jpg", image(width=600, height=900, fmt="jpeg"), content_type="image/jpeg")
        running.add("/ok.webp", image(width=1000, height=1000, fmt="webp"), content_type="image/webp")
        running.add("/small.png", image(width=200, height=200))
        running.add("/narrow.jpg", image(width=400, height=1200, fmt="jpeg"))
        running.add("/html.png", image(width=800, height=800), content_type="text/html")
        running.add("/png.mp4", image(width=800, height=800), content_type="video/mp4")
        fast = render_video(seconds=5, width=1280, height=720)
        running.add("/fast.mp4", fast, content_type="video/mp4")
        running.add("/fast-norange.mp4", fast, ranges=False)
        slow = render_video(seconds=8, width=960, height=540, faststart=False)
        running.add("/tail.mp4", slow, content_type="video/mp4")
        running.add("/tail-norange.mp4", slow, ranges=False)
        running.add("/big.mp4", _pad_mdat(slow, 20 * MB), content_type="video/mp4")
        running.add("/clip.mov", render_video(seconds=3, width=720, height=720, container="mov"),
                    content_type="video/quicktime")
        running.add("/slow-fps.mp4", render_video(seconds=3, width=400, height=300, fps=15))
        running.add("/long.mp4", render_video(seconds=16, width=640, height=640, audio=False))
        running.add("/tone.wav", render_audio(seconds=4), content_type="audio/wav")
        running.add("/tone.mp3", render_audio(seconds=3, fmt="mp3"), content_type="audio/mpeg")
        running.add("/ten.wav", render_audio(seconds=10), content_type="audio/wav")
        running.add("/huge.wav", render_audio(seconds=190), content_type="audio/wav")
        running.add("/gone.mp4", status=404, content_type="text/plain")
        running.add("/broken.mp4", status=503, content_type="text/plain")
        running.add("/sleepy.mp4", fast, delay=5.0)
        for name in ("a", "b", "c"):
            running.add(f"/lazy-{name}.wav", render_audio(seconds=3), delay=0.4)
        port = running.host.rsplit(":", 1)[1]
        running.add("/to-localhost.png", status=302, location=f"http://localhost:{port}/ok.png")
        running.add("/to-ok.png", status=302, location=running.url("/ok.png"))
        yield running


def _probe(server: MediaServer, **body: list[str]) -> ProbeReport:
    return probe_request(body, policy=AddressPolicy(allowed_hosts=frozenset({server.host})),
                         timeout=10)


def _urls(server: MediaServer, *paths: str) -> list[str]:
    return [server.url(path) for path in paths]


def _codes(report: ProbeReport) -> set[tuple[str, str]]:
    return {(v.field, v.code) for v in report.violations}


def _facts(info: MediaInfo, *names: str) -> tuple[Any, ...]:
    return tuple(getattr(info, name) for name in names)


def test_valid_images_probe_clean(server: MediaServer) -> None:
    """PNG, JPEG and WebP within limits: real format and size read, no violation."""
    report = _probe(server, image_urls=_urls(server, "/ok.png", "/ok.jpg", "/ok.webp"))
    assert report.ok, report.violations
    assert [_facts(m, "format", "width", "height") for m in report.media] == [
        ("png", 1280, 720), ("jpeg", 600, 900), ("webp", 1000, 1000)]
    assert [m.content_type for m in report.media] == ["image/png", "image/jpeg", "image/webp"]


def test_image_sides_and_aspect_are_checked(server: MediaServer) -> None:
    """A 200x200 image breaks the side limit; a 400x1200 one breaks the aspect limit."""
    report = _probe(server, image_urls=_urls(server, "/small.png", "/narrow.jpg"))
    assert _codes(report) == {("image_urls[0]", "dimensions_out_of_range"),
                              ("image_urls[1]", "aspect_out_of_range")}
    assert "between 300 and 6000 px" in report.violations[0].message


def test_mislabelled_image_is_flagged_by_content_type(server: MediaServer) -> None:
    """A real PNG served as text/html probes fine but its Content-Type is reported."""
    report = _probe(server, image_urls=_urls(server, "/html.png"))
    assert _codes(report) == {("image_urls[0]", "content_type_mismatch")}


def test_png_served_as_mp4_is_a_format_mismatch(server: MediaServer) -> None:
    """The real format decides: a PNG named .mp4 in video_urls is refused."""
    report = _probe(server, video_urls=_urls(server, "/png.mp4"))
    assert _codes(report) == {("video_urls[0]", "format_mismatch")}


@pytest.mark.parametrize(("path", "expected"), [
    ("/fast.mp4", ("mp4", 1280, 720, 5.0, 24.0)),
    ("/tail.mp4", ("mp4", 960, 540, 8.0, 24.0)),
    ("/clip.mov", ("mov", 720, 720, 3.0, 24.0)),
    ("/fast-norange.mp4", ("mp4", 1280, 720, 5.0, 24.0)),
    ("/tail-norange.mp4", ("mp4", 960, 540, 8.0, 24.0)),
])
def test_videos_probe_their_container_and_stream(
        server: MediaServer, path: str, expected: tuple[Any, ...]) -> None:
    """Faststart and moov-at-end MP4, MOV, with or without Range support: all read in full."""
    report = _probe(server, video_urls=[server.url(path)])
    assert report.ok, report.violations
    assert _facts(report.media[0], "format", "width", "height", "duration", "fps") == expected


def test_moov_at_end_is_read_from_the_tail(server: MediaServer) -> None:
    """A moov-at-end file is probed with a Range request near its end, not a full download."""
    report = _probe(server, video_urls=_urls(server, "/tail.mp4"))
    size = report.media[0].size
    assert report.ok
    assert size is not None
    starts = [int(r.range.split("=")[1].split("-")[0]) for r in server.requests
              if r.path == "/tail.mp4" and r.range]
    assert max(starts) > size // 2


def test_wrong_fps_and_small_frame_are_reported(server: MediaServer) -> None:
    """A 400x300 clip at 15 fps breaks the frame-pixel and frame-rate limits."""
    report = _probe(server, video_urls=_urls(server, "/slow-fps.mp4"))
    assert _codes(report) == {("video_urls[0]", "pixels_out_of_range"),
                              ("video_urls[0]", "fps_out_of_range")}


def test_video_duration_and_totals_are_checked(server: MediaServer) -> None:
    """A 16 s clip is too long on its own, and 5 s + 16 s exceeds the 15 s total."""
    report = _probe(server, video_urls=_urls(server, "/fast.mp4", "/long.mp4"))
    assert _codes(report) == {("video_urls[1]", "duration_out_of_range"),
                              ("video_urls", "total_duration_exceeded")}


def test_two_videos_within_limits_can_exceed_the_total(server: MediaServer) -> None:
    """8 s + 8 s: each clip is fine, together they break the 15 s total."""
    report = _probe(server, video_urls=_urls(server, "/tail.mp4", "/tail-norange.mp4"))
    assert _codes(report) == {("video_urls", "total_duration_exceeded")}
    assert "16.00 s in total" in report.violations[0].message


def test_wav_and_mp3_audio(server: MediaServer) -> None:
    """WAV and MP3 are recognised with their durations."""
    report = _probe(server, audio_urls=_urls(server, "/tone.wav", "/tone.mp3"))
    assert report.ok, report.violations
    assert [_facts(m, "format", "duration") for m in report.media] == [("wav", 4.0), ("mp3", 3.0)]


def test_audio_totals_and_size(server: MediaServer) -> None:
    """Two 10 s tones exceed the audio total; a 16 MB, 190 s WAV is too large and too long."""
    report = _probe(server, audio_urls=_urls(server, "/ten.wav", "/ten.wav", "/huge.wav"))
    assert _codes(report) == {("audio_urls", "total_duration_exceeded"),
                              ("audio_urls[2]", "too_large"),
                              ("audio_urls[2]", "duration_out_of_range")}
    assert report.media[2].bytes_read < MB


def test_large_video_reads_only_what_it_needs(server: MediaServer) -> None:
    """A 20 MB moov-at-end video is probed from a head block and a tail read: far below 1%."""
    report = _probe(server, video_urls=_urls(server, "/big.mp4"))
    info = report.media[0]
    assert report.ok, report.violations
    assert info.size is not None
    assert info.size > 20 * MB
    assert info.bytes_read < info.size // 100
    assert server.bytes_sent("/big.mp4") == info.bytes_read


def test_without_range_support_the_read_budget_stops_the_download(server: MediaServer) -> None:
    """When the server ignores Range, the body is streamed only up to max_read_bytes."""
    report = probe_request({"video_urls": _urls(server, "/tail-norange.mp4")},
                           policy=AddressPolicy(allowed_hosts=frozenset({server.host})),
                           max_read_bytes=128 * 1024)
    assert _codes(report) == {("video_urls[0]", "probe_budget_exceeded")}
    assert 128 * 1024 <= report.media[0].bytes_read <= 192 * 1024


@pytest.mark.parametrize(("path", "status"), [("/gone.mp4", "404"), ("/broken.mp4", "503"),
                                              ("/never-added.mp4", "404")])
def test_http_errors_are_unreachable(server: MediaServer, path: str, status: str) -> None:
    """A 4xx or 5xx answer is reported as unreachable, with the status."""
    report = _probe(server, video_urls=[server.url(path)])
    assert _codes(report) == {("video_urls[0]", "unreachable")}
    assert status in report.violations[0].message


def test_slow_server_times_out_within_the_deadline(server: MediaServer) -> None:
    """A server that answers after 5 s is unreachable for a 0.5 s probe, which returns promptly."""
    started = time.monotonic()
    report = probe_request({"video_urls": _urls(server, "/sleepy.mp4")},
                           policy=AddressPolicy(allowed_hosts=frozenset({server.host})),
                           timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert _codes(report) == {("video_urls[0]", "unreachable")}
    assert "timed out" in report.violations[0].message


def test_unsafe_urls_are_refused_without_a_request(server: MediaServer) -> None:
    """The default policy refuses the local server (http, loopback) before connecting."""
    before = len(server.requests)
    report = probe_request({"image_urls": _urls(server, "/ok.png"),
                            "audio_urls": ["https://169.254.169.254/latest/meta-data"]})
    assert _codes(report) == {("image_urls[0]", "unsafe_url"), ("audio_urls[0]", "unsafe_url")}
    assert len(server.requests) == before


def test_redirects_are_followed_and_vetted(server: MediaServer) -> None:
    """A redirect to an allowed URL is probed; one to a host name outside the policy is unsafe."""
    report = _probe(server, image_urls=_urls(server, "/to-ok.png", "/to-localhost.png"))
    assert _codes(report) == {("image_urls[1]", "unsafe_url")}
    assert report.media[0].format == "png"
    assert "plain http" in report.violations[0].message  # localhost:PORT is not on the allow-list


def test_references_are_probed_concurrently(server: MediaServer) -> None:
    """Three references that each take 0.4 s to answer are probed in well under 1.2 s."""
    started = time.monotonic()
    report = _probe(server, audio_urls=_urls(server, "/lazy-a.wav", "/lazy-b.wav", "/lazy-c.wav"))
    assert time.monotonic() - started < 1.0
    assert [m.duration for m in report.media] == [3.0, 3.0, 3.0]


def test_probe_sends_the_preflight_user_agent(server: MediaServer) -> None:
    """Every probe request carries the explicit seedance-relay preflight User-Agent."""
    _probe(server, audio_urls=_urls(server, "/tone.mp3"))
    agents = {r.user_agent for r in server.requests if r.path == "/tone.mp3"}
    assert agents == {USER_AGENT}


def test_body_without_references_probes_nothing() -> None:
    """No URL arrays (or non-string entries) means an empty, ok report."""
    report = probe_request({"prompt": "a cat", "image_urls": [42]})
    assert report.ok
    assert report.media == []
