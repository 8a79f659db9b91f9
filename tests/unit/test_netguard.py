"""The SSRF guard: which URLs and addresses are refused, and that the transport enforces it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from handlers.base.errors import UnsafeURL
from handlers.net.netguard import (
    USER_AGENT,
    AddressPolicy,
    address_refusal,
    check_url,
    guarded_client,
    guarded_transport,
)
from tests.support.media_server import MediaServer
from tests.support.tls import self_signed

REFUSED = [
    ("https://127.0.0.1/", "loopback"),
    ("https://127.1/", "loopback"),
    ("https://2130706433/", "loopback"),
    ("https://[::1]/", "loopback"),
    ("https://10.1.2.3/", "private"),
    ("https://172.16.0.1/", "private"),
    ("https://192.168.1.1/", "private"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://100.64.0.1/", "carrier-grade NAT"),
    ("https://[fc00::1]/", "private"),
    ("https://[fe80::1]/", "link-local"),
    ("https://[::ffff:127.0.0.1]/", "embeds 127.0.0.1, which is loopback"),
    ("https://[::ffff:169.254.169.254]/", "link-local"),
    ("https://[2002:a00:1::1]/", "embeds 10.0.0.1, which is private"),
    ("https://0.0.0.0/", "unspecified"),
    ("https://[::]/", "unspecified"),
    ("https://224.0.0.1/", "multicast"),
    ("https://240.0.0.1/", "private|reserved"),
    ("https://localhost/", "loopback"),
    ("file:///etc/passwd", "scheme 'file'"),
    ("ftp://example.com/a.png", "scheme 'ftp'"),
    ("gopher://example.com/", "scheme 'gopher'"),
    ("data:image/png;base64,AAAA", "scheme"),
    ("http://example.com/a.png", "plain http"),
    ("https://user:secret@example.com/a.png", "credentials"),
    ("https:///a.png", "no host"),
    ("not a url", "scheme"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_check_url_refuses_unsafe_targets(url: str, reason: str) -> None:
    """Each scheme, userinfo or non-public address in the table is refused with its reason."""
    with pytest.raises(UnsafeURL, match=reason):
        check_url(url, AddressPolicy())


@pytest.mark.parametrize("url", [
    "https://93.184.216.34/clip.mp4",
    "https://8.8.8.8/a.png",
    "https://[2606:4700:4700::1111]/a.wav",
])
def test_check_url_allows_public_literals(url: str) -> None:
    """Public IP literals over https pass (checked only: nothing connects)."""
    check_url(url, AddressPolicy())


def test_allowed_host_permits_http_and_its_address() -> None:
    """An allow-listed host:port is reachable over http even on loopback; its other ports are not."""
    policy = AddressPolicy(allowed_hosts=frozenset({"127.0.0.1:8123"}))
    check_url("http://127.0.0.1:8123/x", policy)
    with pytest.raises(UnsafeURL, match="plain http"):
        check_url("http://127.0.0.1:8124/x", policy)


def test_allow_http_keeps_the_address_check() -> None:
    """allow_http lifts only the scheme rule: loopback stays refused."""
    check_url("http://93.184.216.34/", AddressPolicy(allow_http=True))
    with pytest.raises(UnsafeURL, match="loopback"):
        check_url("http://127.0.0.1/", AddressPolicy(allow_http=True))


def test_allow_private_opens_private_addresses_but_not_other_schemes() -> None:
    """allow_private is the explicit opt-in for local tests; it never allows file:// or userinfo."""
    policy = AddressPolicy(allow_private=True)
    check_url("https://10.0.0.1/", policy)
    with pytest.raises(UnsafeURL, match="scheme"):
        check_url("file:///etc/passwd", policy)
    with pytest.raises(UnsafeURL, match="credentials"):
        check_url("https://a:b@10.0.0.1/", policy)


def test_check_url_without_resolve_leaves_names_to_the_transport() -> None:
    """resolve=False checks the URL only: a name is not looked up, a literal still is vetted."""
    check_url("https://localhost/", AddressPolicy(), resolve=False)
    with pytest.raises(UnsafeURL, match="loopback"):
        check_url("https://127.0.0.1/", AddressPolicy(), resolve=False)


@pytest.mark.parametrize(("address", "refused"), [
    ("93.184.216.34", False),
    ("2606:4700:4700::1111", False),
    ("100.127.255.255", True),
    ("198.18.0.1", True),
    ("255.255.255.255", True),
    ("64:ff9b::7f00:1", True),
    ("2001:db8::1", True),
])
def test_address_refusal_table(address: str, refused: bool) -> None:
    """address_refusal names a reason exactly for non-public addresses."""
    assert (address_refusal(ipaddress.ip_address(address)) is not None) is refused


@pytest.fixture
def server() -> Iterator[MediaServer]:
    with MediaServer() as running:
        running.add("/hello", b"hello", content_type="text/plain")
        yield running


def _get(policy: AddressPolicy, url: str) -> httpx.Response:
    with guarded_client(policy, timeout=5) as client:
        response = client.get(url)
        response.read()
        return response


def test_guarded_client_refuses_a_local_server_by_default(server: MediaServer) -> None:
    """With http allowed but no private opt-in, 127.0.0.1 is refused before any byte is sent."""
    with pytest.raises(UnsafeURL, match="loopback"):
        _get(AddressPolicy(allow_http=True), server.url("/hello"))
    assert server.requests == []


def test_guarded_client_reaches_a_local_server_when_allowed(server: MediaServer) -> None:
    """allow_private, or the server's host:port on the allow-list, lets the request through."""
    assert _get(AddressPolicy(allow_http=True, allow_private=True), server.url("/hello")).text == "hello"
    assert _get(AddressPolicy(allowed_hosts=frozenset({server.host})), server.url("/hello")).text == "hello"


def test_guarded_client_sends_its_user_agent(server: MediaServer) -> None:
    """Requests carry the explicit relay User-Agent, not httpx's default."""
    _get(AddressPolicy(allowed_hosts=frozenset({server.host})), server.url("/hello"))
    assert [r.user_agent for r in server.requests] == [USER_AGENT]


def test_name_resolving_to_loopback_is_refused_at_connect_time(server: MediaServer) -> None:
    """'localhost' passes the URL check but the transport vets what it resolves to."""
    port = server.host.rsplit(":", 1)[1]
    url = f"http://localhost:{port}/hello"
    policy = AddressPolicy(allow_http=True)
    check_url(url, policy, resolve=False)
    with pytest.raises(UnsafeURL, match=r"'localhost' resolves to .* loopback"):
        _get(policy, url)
    assert server.requests == []


def test_every_redirect_hop_is_vetted(server: MediaServer) -> None:
    """An allowed host that redirects to a refused target (another host name) is stopped."""
    port = server.host.rsplit(":", 1)[1]
    server.add("/jump", status=302, location=f"http://localhost:{port}/hello")
    server.add("/downgrade", status=302, location="http://93.184.216.34/")
    policy = AddressPolicy(allowed_hosts=frozenset({server.host}))
    with pytest.raises(UnsafeURL, match="localhost"):
        _get(policy, server.url("/jump"))
    with pytest.raises(UnsafeURL, match="plain http"):
        _get(policy, server.url("/downgrade"))
    assert [r.path for r in server.requests] == ["/jump", "/downgrade"]


def test_redirects_are_capped(server: MediaServer) -> None:
    """A redirect loop ends after five hops with httpx's TooManyRedirects."""
    server.add("/loop", status=302, location=server.url("/loop"))
    with pytest.raises(httpx.TooManyRedirects):
        _get(AddressPolicy(allowed_hosts=frozenset({server.host})), server.url("/loop"))
    assert len(server.requests) == 6


def test_tls_verifies_the_host_name_while_connecting_to_the_vetted_ip(tmp_path: Path) -> None:
    """The transport connects to the resolved IP literal, yet TLS checks the cert for 'localhost'.

    The certificate names only DNS:localhost, so the handshake succeeds only if SNI and
    hostname verification use the URL's host, not the address connected to.
    """
    server_ctx, client_ctx = self_signed(tmp_path)
    with MediaServer(tls=server_ctx) as tls_server:
        tls_server.add("/secure", b"over tls", content_type="text/plain")
        port = tls_server.host.rsplit(":", 1)[1]
        transport = guarded_transport(AddressPolicy(allow_private=True), verify=client_ctx)
        with httpx.Client(transport=transport, timeout=5) as client:
            assert client.get(f"https://localhost:{port}/secure").text == "over tls"
