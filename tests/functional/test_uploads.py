"""Uploads: stored once by content, fetched only through a signed, expiring URL."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.app.relay import Relay
from handlers.net.server import BackgroundServer
from handlers.sandbox.media import render_audio, render_image, render_video
from tests.support.fakes import Clock, FakeProvider, local_relay

KEY = {"Authorization": "Bearer key-1"}
PNG = render_image(width=400, height=300)


@pytest.fixture
def clock() -> Clock:
    import time

    return Clock(time.time())


@pytest.fixture
def relay(tmp_path: Path, clock: Clock) -> Iterator[Relay]:
    relay = local_relay(tmp_path, FakeProvider(), clock, RELAY_UPLOAD_URL_TTL="60")
    yield relay
    relay.close()


@pytest.fixture
def client(relay: Relay) -> Iterator[httpx.Client]:
    with BackgroundServer(create_app(relay, ApiKeys(["key-1"]))) as url, httpx.Client(base_url=url) as client:
        relay.callback_base = url
        yield client


def upload(client: httpx.Client, data: bytes = PNG, content_type: str = "image/png", **headers: str) -> httpx.Response:
    return client.post("/v1/uploads", content=data, headers={**KEY, "Content-Type": content_type, **headers})


def test_an_upload_answers_a_signed_url_that_serves_the_bytes(client: httpx.Client) -> None:
    response = upload(client)
    body = response.json()
    fetched = httpx.get(body["url"])
    assert response.status_code == 201 and body["kind"] == "image" and body["size"] == len(PNG)
    assert body["url"].split("?")[0].endswith(".png")
    assert fetched.status_code == 200 and fetched.content == PNG and fetched.headers["content-type"] == "image/png"


def test_the_same_file_is_stored_once(client: httpx.Client, relay: Relay, tmp_path: Path) -> None:
    first, second = upload(client).json(), upload(client).json()
    assert first["key"] == second["key"]
    assert first["tenant"] == "default" and first["key"].startswith("uploads/default/")
    assert len(list((tmp_path / "relay" / "blobs" / "uploads" / "default").glob("*.png"))) == 1


def test_a_tampered_or_expired_url_is_404(client: httpx.Client, clock: Clock) -> None:
    url = upload(client).json()["url"]
    query = parse_qs(urlsplit(url).query)
    base = url.split("?")[0]
    forged = httpx.get(base, params={"expires": str(int(query["expires"][0]) + 3600), "sig": query["sig"][0]})
    clock.advance(61)
    expired = httpx.get(url)
    assert (forged.status_code, expired.status_code) == (404, 404)


def test_uploads_need_the_api_key(client: httpx.Client) -> None:
    response = client.post("/v1/uploads", content=PNG, headers={"Content-Type": "image/png"})
    assert response.status_code == 401


@pytest.mark.parametrize(("content_type", "data", "field", "code"), [
    ("image/gif", b"GIF89a", "Content-Type", "unsupported_format"),
    ("text/plain", b"hello", "Content-Type", "unsupported_format"),
    ("image/png", b"", "body", "empty"),
    ("audio/mpeg", b"ID3" + b"\x00" * (15 * 1024 * 1024), "body", "too_large"),
])
def test_bad_uploads_name_the_field_and_limit(client: httpx.Client, content_type: str, data: bytes, field: str,
                                              code: str) -> None:
    response = upload(client, data, content_type)
    error = response.json()["error"]["errors"][0]
    assert response.status_code == 400 and (error["field"], error["code"]) == (field, code)


def test_bodies_over_the_largest_limit_are_refused_before_being_read(client: httpx.Client) -> None:
    response = upload(client, b"\x00" * (50 * 1024 * 1024 + 1), "video/mp4")
    assert response.status_code == 413


@pytest.mark.parametrize(("content_type", "data"), [
    ("image/jpeg", render_image(width=400, height=300, fmt="jpeg")),
    ("image/webp", render_image(width=400, height=300, fmt="webp")),
    ("audio/wav", render_audio(seconds=1)),
    ("audio/x-wav", render_audio(seconds=1)),
    ("audio/mpeg", render_audio(seconds=1, fmt="mp3")),
    ("video/mp4", render_video(seconds=1, width=320, height=240, audio=False)),
    ("video/quicktime", render_video(seconds=1, width=320, height=240, audio=False)),
])
def test_real_files_of_each_accepted_type_are_stored(client: httpx.Client, content_type: str, data: bytes) -> None:
    response = upload(client, data, content_type)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(("content_type", "data", "detected"), [
    ("video/mp4", PNG, "image/png"),
    ("image/png", render_image(width=400, height=300, fmt="jpeg"), "image/jpeg"),
    ("image/jpeg", b"GIF89a" + b"\x00" * 100, "image/gif"),
    ("audio/mpeg", render_audio(seconds=1), "audio/wav"),
    ("image/webp", b"just some text that is not an image at all", None),
])
def test_bytes_that_are_not_the_declared_type_are_refused_415_naming_what_they_are(
        client: httpx.Client, tmp_path: Path, content_type: str, data: bytes, detected: str | None) -> None:
    response = upload(client, data, content_type)
    error = response.json()["error"]
    assert response.status_code == 415 and error["code"] == "unsupported_media_type"
    assert (error["declared"], error["detected"]) == (content_type, detected)
    assert (detected or "not a recognised media type") in error["message"]
    assert not (tmp_path / "relay" / "blobs" / "uploads").exists() or not any(
        (tmp_path / "relay" / "blobs" / "uploads").iterdir())


def test_a_mismatched_upload_is_refused_on_its_first_bytes_before_the_rest_is_read(client: httpx.Client) -> None:
    """A body declared 40 MB of video/mp4 whose first bytes are a PNG is answered 415 with the rest unsent."""
    url = httpx.URL(str(client.base_url))
    head = (b"POST /v1/uploads HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer key-1\r\n"
            b"Content-Type: video/mp4\r\nContent-Length: 41943040\r\n\r\n")
    with socket.create_connection((url.host, url.port), timeout=5) as conn:
        conn.sendall(head + PNG[:4096])
        answer = b""
        while b"unsupported_media_type" not in answer and (chunk := conn.recv(65536)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 415 ") and b"unsupported_media_type" in answer
