"""Uploads: stored once by content, fetched only through a signed, expiring URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.relay import Relay
from handlers.sandbox.media import render_image
from handlers.server import BackgroundServer
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
    assert len(list((tmp_path / "relay" / "blobs" / "uploads").glob("*.png"))) == 1


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
    ("audio/mpeg", b"\x00" * (15 * 1024 * 1024 + 1), "body", "too_large"),
])
def test_bad_uploads_name_the_field_and_limit(client: httpx.Client, content_type: str, data: bytes, field: str,
                                              code: str) -> None:
    response = upload(client, data, content_type)
    error = response.json()["error"]["errors"][0]
    assert response.status_code == 400 and (error["field"], error["code"]) == (field, code)


def test_bodies_over_the_largest_limit_are_refused_before_being_read(client: httpx.Client) -> None:
    response = upload(client, b"\x00" * (50 * 1024 * 1024 + 1), "video/mp4")
    assert response.status_code == 413
