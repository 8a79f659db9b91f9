"""SSRF guard for every outbound fetch of a URL someone else gave us.

Two layers, both driven by one :class:`AddressPolicy`:

- :func:`check_url` vets a URL before use: scheme (https only; http for allow-listed hosts
  or with ``allow_http``), no userinfo, a host, and every address the host names or
  resolves to must be public.
- :func:`guarded_transport` is an httpx transport whose connections resolve the host
  themselves, vet *every* resolved address and then connect to the vetted IP literal, so a
  DNS answer that changes between the check and the connect (rebinding) cannot reach a
  private address. TLS still verifies and sends SNI for the original host name: httpcore
  takes ``server_hostname`` from the request origin, not from the address connected to.
  Each request, redirects included, passes :func:`check_url` again inside the transport.
- :func:`connect_guarded` is that connect step on its own: the result download
  (:mod:`handlers.net.download`, on ``http.client``) opens its sockets through it too.

Policy refusals raise :class:`~handlers.base.errors.UnsafeURL`, never an httpx or httpcore
exception. A host that does not resolve is a connection failure (``httpx.ConnectError``),
not a policy refusal.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import httpcore
import httpx

from handlers import __version__
from handlers.base.errors import UnsafeURL

__all__ = [
    "USER_AGENT",
    "AddressPolicy",
    "AddressRefused",
    "GuardedBackend",
    "GuardedTransport",
    "address_refusal",
    "check_url",
    "connect_guarded",
    "guarded_client",
    "guarded_transport",
    "parse_url",
]

USER_AGENT = f"seedance-relay/{__version__} (+preflight)"
MAX_REDIRECTS = 5

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
T = typing.TypeVar("T")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Where outbound fetches may go.

    ``allowed_hosts`` holds ``host`` or ``host:port`` entries (``[::1]:8080`` for IPv6)
    that are always allowed, over http too: the local sandbox, for instance.
    ``allow_private`` turns the address check off (explicit opt-in for local testing).
    """

    allow_http: bool = False
    allow_private: bool = False
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    def allows_host(self, host: str, port: int) -> bool:
        """Whether ``host`` (or ``host:port``) is on the allow-list."""
        host = host.lower().strip("[]")
        keys = {host, f"{host}:{port}", f"[{host}]:{port}"}
        return any(entry.lower() in keys for entry in self.allowed_hosts)


def _categories(ip: IPAddress) -> Iterable[tuple[bool, str]]:
    yield ip.is_unspecified, "unspecified"
    yield ip.is_loopback, "loopback"
    yield ip.is_link_local, "link-local"
    yield ip.is_multicast, "multicast"
    yield isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "carrier-grade NAT"
    yield isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "site-local"
    yield ip.is_private, "private"
    yield ip.is_reserved, "reserved"
    yield not ip.is_global, "not globally routable"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    return ip.teredo[1] if ip.teredo is not None else None


def _category(ip: IPAddress) -> str | None:
    return next((category for refused, category in _categories(ip) if refused), None)


def address_refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be contacted (``"10.0.0.1 is private"``), or None if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and (inner := _category(embedded)) is not None:
            return f"{ip} embeds {embedded}, which is {inner}"
    category = _category(ip)
    return None if category is None else f"{ip} is {category}"


def _literal_addresses(host: str) -> list[IPAddress] | None:
    """The address ``host`` spells, including forms such as ``127.1``; None for a name."""
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        return None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to; raises ``socket.gaierror`` when none."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    unique = dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos)
    return [ipaddress.ip_address(address) for address in unique]


def _vet(url: str, addresses: Iterable[IPAddress]) -> None:
    for ip in addresses:
        if (reason := address_refusal(ip)) is not None:
            raise UnsafeURL(url, reason)


def parse_url(url: str) -> httpx.URL:
    """``url`` parsed as the relay's fetches send it; :class:`UnsafeURL` if it is malformed."""
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UnsafeURL(str(url), f"malformed URL: {exc}") from exc


def _check_parts(url: str, parsed: httpx.URL, policy: AddressPolicy) -> tuple[str, int]:
    scheme, host = parsed.scheme, parsed.host
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeURL(url, f"scheme {scheme or 'missing'!r} is not allowed, only https")
    if not host:
        raise UnsafeURL(url, "no host")
    if parsed.userinfo:
        raise UnsafeURL(url, "credentials in the URL are not allowed")
    port = parsed.port or _DEFAULT_PORTS[scheme]
    if scheme == "http" and not (policy.allow_http or policy.allows_host(host, port)):
        raise UnsafeURL(url, "plain http is not allowed, only https")
    return host, port


def check_url(url: str, policy: AddressPolicy, *, resolve: bool = True) -> None:
    """Raise :class:`UnsafeURL` unless ``url`` may be fetched under ``policy``.

    With ``resolve`` (the default) the host name is resolved and every address vetted; a
    name that does not resolve is refused too. Without it only the URL itself is checked
    (scheme, userinfo, literal addresses): the guarded transport vets at connect time.
    """
    parsed = parse_url(url)
    host, port = _check_parts(url, parsed, policy)
    if policy.allow_private or policy.allows_host(host, port):
        return
    literal = _literal_addresses(host)
    if literal is not None:
        _vet(url, literal)
    elif resolve:
        try:
            _vet(url, _resolve(parsed.raw_host.decode("ascii"), port))
        except socket.gaierror as exc:
            raise UnsafeURL(url, f"host {host!r} does not resolve: {exc}") from exc


class AddressRefused(Exception):
    """A host resolved to an address the policy refuses; raised while connecting, before any byte is sent."""


def connect_guarded(
    policy: AddressPolicy,
    host: str,
    port: int,
    connect: Callable[[str], T],
    *,
    retry_on: tuple[type[Exception], ...],
    failure: Callable[[str], Exception],
) -> T:
    """``connect(address)`` to the first of ``host``'s addresses that answers, all of them vetted first.

    An allow-listed ``host`` is connected to as named. Otherwise the host is resolved here and
    every address it names must pass the policy (:class:`AddressRefused` if one does not), and
    the connection goes to the vetted IP literal, so a second lookup cannot answer differently.
    ``retry_on`` are the errors that move on to the next address; ``failure`` builds the
    error raised when the name does not resolve or no address is left.
    """
    if policy.allows_host(host, port):
        return connect(host)
    try:
        addresses = _resolve(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise failure(f"cannot resolve {host!r}: {exc}") from exc
    if not policy.allow_private:
        for ip in addresses:
            if (reason := address_refusal(ip)) is not None:
                raise AddressRefused(f"{host!r} resolves to {reason}")
    last: Exception | None = None
    for ip in addresses:
        try:
            return connect(str(ip))
        except retry_on as exc:
            last = exc
    raise last or failure(f"no address to connect to for {host!r}")


class GuardedBackend(httpcore.SyncBackend):
    """A network backend that connects only to addresses the policy allows."""

    def __init__(self, policy: AddressPolicy) -> None:
        super().__init__()
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        def connect(address: str) -> httpcore.NetworkStream:
            return super(GuardedBackend, self).connect_tcp(address, port, timeout, local_address, socket_options)

        return connect_guarded(self.policy, host, port, connect,
                               retry_on=(httpcore.ConnectError, httpcore.ConnectTimeout),
                               failure=httpcore.ConnectError)


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose every request and connection is vetted by a policy.

    No proxy and no Unix socket: both would bypass the address check.
    """

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> None:
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
        limits = limits or DEFAULT_LIMITS
        super().__init__(verify=ssl_context, http1=http1, http2=http2, limits=limits)
        self.policy = policy
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=http1,
            http2=http2,
            local_address=local_address,
            retries=retries,
            socket_options=socket_options,
            network_backend=GuardedBackend(policy),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        check_url(url, self.policy, resolve=False)
        try:
            return super().handle_request(request)
        except AddressRefused as exc:
            raise UnsafeURL(url, str(exc)) from None


def guarded_transport(
    policy: AddressPolicy, **httpx_transport_kwargs: typing.Any
) -> GuardedTransport:
    """A transport that refuses what ``policy`` refuses (see :class:`GuardedTransport`)."""
    return GuardedTransport(policy, **httpx_transport_kwargs)


def guarded_client(
    policy: AddressPolicy,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` on a guarded transport: redirects followed (at most 5), each hop
    vetted; no proxies or netrc from the environment; an explicit User-Agent."""
    return httpx.Client(
        transport=guarded_transport(policy),
        timeout=timeout,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        trust_env=False,
    )
