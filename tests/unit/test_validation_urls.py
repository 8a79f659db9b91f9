"""Request validation of URLs: schemes, hosts, extensions, and the callback URL's rules."""

from __future__ import annotations

import pytest

from handlers.domain.contract import CALLBACK_URL_MAX, VIDEO
from handlers.provider.validation import validate_request
from tests.support.requests import request_body, violation_codes


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("example.com/a.jpg", "invalid_url"),
        ("/images/a.jpg", "invalid_url"),
        ("https:///a.jpg", "invalid_url"),
        ("", "invalid_url"),
        ("https://user:secret@example.com/a.jpg", "invalid_url"),
        ("https://example.com/my photo.jpg", "invalid_url"),
        ("https://example.com:99999/a.jpg", "invalid_url"),
        ("https://[::1/a.jpg", "invalid_url"),
        ("http://example.com/a.jpg", "insecure_url"),
        ("ftp://example.com/a.jpg", "insecure_url"),
        ("data:image/png;base64,iVBORw0KGgo=", "inline_data_forbidden"),
        ("DATA:image/jpeg;base64,/9j/4AAQ", "inline_data_forbidden"),
        ("iVBORw0KGgoAAAANSUhEUgAA" * 10, "inline_data_forbidden"),
        ("/9j/4AAQSkZJRgABAQ+/\n" * 10, "inline_data_forbidden"),
        ("https://example.com/a.gif", "unsupported_format"),
        ("https://example.com/a.mp4", "unsupported_format"),
        ("https://example.com/a.jpg.exe", "unsupported_format"),
    ],
)
def test_bad_image_urls_are_refused(url: str, code: str) -> None:
    """Image URLs must be absolute https links without credentials to a supported format."""
    assert violation_codes(request_body(image_urls=["https://e.com/ok.png", url])) == {("image_urls[1]", code)}


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a.JPG",
        "https://example.com/a.jpeg",
        "https://example.com/a.webp?sig=abc.gif",
        "https://example.com/render/12345",
        "https://example.com/api/v1.0",
        "https://example.com/dir/",
        "https://cdn.example.com:8443/a%20b.png#frag",
        "https://例え.jp/画像.png",
    ],
)
def test_good_image_urls_are_accepted(url: str) -> None:
    """Case-insensitive extensions, no extension, and query strings are fine."""
    assert validate_request(request_body(image_urls=[url])) == []


@pytest.mark.parametrize(
    ("array", "good", "bad"),
    [
        ("video_urls", "https://e.com/clip.MOV", "https://e.com/clip.webm"),
        ("audio_urls", "https://e.com/voice.wav", "https://e.com/voice.ogg"),
    ],
)
def test_video_and_audio_extensions(array: str, good: str, bad: str) -> None:
    """Videos are .mp4/.mov and audio .wav/.mp3."""
    assert validate_request(request_body(**{array: [good]})) == []
    assert violation_codes(request_body(**{array: [bad]})) == {(f"{array}[0]", "unsupported_format")}


def test_unsupported_format_names_the_allowed_extensions() -> None:
    """unsupported_format lists the kind's extensions."""
    (violation,) = validate_request(request_body(video_urls=["https://e.com/a.avi"]))
    assert all(ext in violation.message for ext in VIDEO.extensions)


def test_allow_http_accepts_plain_http_media_and_callback() -> None:
    """With allow_http (the sandbox is the provider) http URLs are valid; https still is."""
    body = request_body(image_urls=["http://127.0.0.1:9000/a.png", "https://e.com/b.png"],
                 callback_url="http://127.0.0.1:8080/cb")
    assert validate_request(body, allow_http=True) == []
    assert violation_codes(body) == {("image_urls[0]", "insecure_url"), ("callback_url", "insecure_url"),
                            ("callback_url", "private_address")}


def test_allow_http_still_refuses_other_schemes() -> None:
    """allow_http widens https to http only, not to ftp or file."""
    assert violation_codes(request_body(audio_urls=["ftp://e.com/a.mp3"]), allow_http=True) == {
        ("audio_urls[0]", "insecure_url")
    }


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://relay.example.com/cb", "insecure_url"),
        ("relay.example.com/cb", "invalid_url"),
        ("https://u:p@relay.example.com/cb", "invalid_url"),
        ("https://relay.example.com/" + "x" * CALLBACK_URL_MAX, "too_long"),
    ],
)
def test_callback_url_rules(url: str, code: str) -> None:
    """callback_url is an https URL of at most 2048 characters."""
    assert violation_codes(request_body(callback_url=url)) == {("callback_url", code)}


@pytest.mark.parametrize(("host", "kind"), [
    ("10.1.2.3", "private"), ("192.168.0.10", "private"), ("172.16.5.4", "private"), ("[fd00::1]", "private"),
    ("127.0.0.1", "loopback"), ("[::1]", "loopback"), ("[::ffff:127.0.0.1]", "loopback"),
    ("169.254.169.254", "link-local"), ("[fe80::1]", "link-local"),
    ("0.0.0.0", "unspecified"), ("[::]", "unspecified"),  # noqa: S104 (a URL host under test, not a bind)
    ("localhost", "names this machine"), ("LOCALHOST.", "names this machine"), ("api.localhost", "names this machine"),
])
def test_callback_url_to_a_local_host_is_refused(host: str, kind: str) -> None:
    """As EvoLink does, a callback_url whose host is a literal non-public address or localhost is refused."""
    violations = validate_request(request_body(callback_url=f"https://{host}:8443/cb"))
    assert [(v.field, v.code) for v in violations] == [("callback_url", "private_address")]
    assert kind in violations[0].message


@pytest.mark.parametrize("host", ["relay.example.com", "8.8.8.8", "[2606:4700::1111]", "10.example.com"])
def test_callback_url_to_a_public_or_named_host_is_fine(host: str) -> None:
    """Public literals and host names pass (names are not resolved here)."""
    assert validate_request(request_body(callback_url=f"https://{host}/cb")) == []


def test_a_local_callback_is_fine_when_the_sandbox_is_the_provider() -> None:
    """allow_http (the sandbox on this machine is the provider) accepts a loopback callback."""
    assert validate_request(request_body(callback_url="http://127.0.0.1:8000/cb"), allow_http=True) == []


def test_callback_url_at_the_length_limit_is_fine() -> None:
    """Exactly 2048 characters is allowed."""
    url = "https://relay.example.com/"
    assert validate_request(request_body(callback_url=url + "x" * (CALLBACK_URL_MAX - len(url)))) == []


def test_forbidden_callback_is_not_allowed() -> None:
    """When the relay sets the callback, any callback_url from the caller is not_allowed."""
    violations = validate_request(request_body(), callback="forbidden")
    assert [(v.field, v.code) for v in violations] == [("callback_url", "not_allowed")]
    assert "set by the relay" in violations[0].message
    assert validate_request(request_body(callback_url=None), callback="forbidden") == []
