"""Webhook targets, from the settings ``RELAY_WEBHOOKS`` and ``RELAY_WEBHOOK_SECRET_<NAME>`` give.

::

    RELAY_SUBSCRIBERS="archive:*,crm:completed+failed"
    RELAY_WEBHOOKS="crm=https://crm.example.com/hooks/seedance"
    RELAY_WEBHOOK_SECRET_CRM="whsec_NEW… whsec_OLD…"       # space-separated, newest first; all sign
    RELAY_WEBHOOK_SECRET_CRM_PARAM=/seedance-relay/prod/webhook-crm   # Lambda: an SSM SecureString instead

A webhook is a subscriber: its name must also be in ``RELAY_SUBSCRIBERS``, whose filter
decides which event types it gets. The secret variable's name is the webhook's name in
upper case with ``-`` turned into ``_``. URLs must be https; plain http is allowed only to
a loopback host (local use). Every secret is registered with :func:`register_secret`, so
no log line can print it. ``*_PARAM`` parameters are resolved by the webhooks Lambda
(:mod:`handlers.lambdas.webhooks`), never here: this module makes no network calls.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from handlers.app.settings import PARAM_SUFFIX, WEBHOOKS_VARIABLE, Settings, parse_webhooks, secret_variable
from handlers.base.errors import ConfigurationError
from handlers.base.logs import register_secret
from handlers.webhooks.signing import SECRET_PREFIX, WebhookSecret

__all__ = ["MIN_SECRET_BYTES", "PARAM_SUFFIX", "WEBHOOKS_VARIABLE", "WebhookTarget", "load_targets",
           "parse_webhooks", "secret_parameters", "secret_variable"]

MIN_SECRET_BYTES = 24
_LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where one subscriber's events are POSTed, and the secrets that sign them (newest first)."""

    name: str
    url: str
    secrets: tuple[WebhookSecret, ...] = field(repr=False)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


def load_targets(settings: Settings, *, names: Collection[str] | None = None) -> tuple[WebhookTarget, ...]:
    """Every webhook in ``RELAY_WEBHOOKS`` (or only ``names``), checked; ``ConfigurationError`` names the variable."""
    pairs = settings.webhooks
    _check_variables_distinct(pairs)
    listed = {name for name, _ in pairs}
    missing = sorted(set(names or ()) - listed)
    if missing:
        raise ConfigurationError(f"{WEBHOOKS_VARIABLE}: no webhook named {', '.join(map(repr, missing))}")
    subscribers = {name for name, _ in settings.subscribers}
    chosen = [(name, url) for name, url in pairs if names is None or name in names]
    return tuple(_target(settings, name, url, subscribers) for name, url in chosen)


def secret_parameters(settings: Settings, names: Collection[str]) -> dict[str, str]:
    """``{webhook name: SSM parameter name}`` for each of ``names`` with a ``_PARAM`` and no secret."""
    return {name: settings.webhook_secret_params[name] for name in sorted(names)
            if name in settings.webhook_secret_params and name not in settings.webhook_secrets}


def _target(settings: Settings, name: str, url: str, subscribers: Collection[str]) -> WebhookTarget:
    if name not in subscribers:
        raise ConfigurationError(
            f"{WEBHOOKS_VARIABLE}: webhook {name!r} is not a subscriber; add '{name}:<filter>' "
            f"(e.g. '{name}:completed' or '{name}:*') to RELAY_SUBSCRIBERS")
    _check_url(name, url)
    return WebhookTarget(name=name, url=url, secrets=_secrets(settings, name))


def _check_variables_distinct(pairs: tuple[tuple[str, str], ...]) -> None:
    variables: dict[str, str] = {}
    for name, _ in pairs:
        other = variables.setdefault(secret_variable(name), name)
        if other != name:
            raise ConfigurationError(f"{WEBHOOKS_VARIABLE}: webhooks {other!r} and {name!r} would share "
                                     f"{secret_variable(name)}; rename one")


def _check_url(name: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigurationError(f"{WEBHOOKS_VARIABLE}: webhook {name!r} has a malformed URL: {exc}") from exc
    if not host:
        raise ConfigurationError(f"{WEBHOOKS_VARIABLE}: webhook {name!r} URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(f"{WEBHOOKS_VARIABLE}: webhook {name!r} URL may not carry credentials; "
                                 "receivers authenticate requests by their signature")
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host)):
        return
    raise ConfigurationError(f"{WEBHOOKS_VARIABLE}: webhook {name!r} URL must be https "
                             "(plain http only to a loopback host, for local use)")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secrets(settings: Settings, name: str) -> tuple[WebhookSecret, ...]:
    variable = secret_variable(name)
    raw = settings.webhook_secrets.get(name)
    tokens = (raw or "").split()
    register_secret(raw, *tokens, *(t.removeprefix(SECRET_PREFIX) for t in tokens))
    if not tokens:
        where = (f" ({variable}{PARAM_SUFFIX} names an SSM parameter: only the webhooks Lambda reads it)"
                 if name in settings.webhook_secret_params else "")
        raise ConfigurationError(f"{variable} is not set: webhook {name!r} needs a signing secret "
                                 f"({SECRET_PREFIX}<base64>){where}")
    return tuple(_secret(variable, index, token) for index, token in enumerate(tokens, start=1))


def _secret(variable: str, index: int, token: str) -> WebhookSecret:
    try:
        secret = WebhookSecret.parse(token)
    except ValueError as exc:
        raise ConfigurationError(f"{variable}: secret #{index} is not usable: {exc}") from None
    if len(secret.key) < MIN_SECRET_BYTES:
        raise ConfigurationError(f"{variable}: secret #{index} is {len(secret.key)} bytes; "
                                 f"the spec asks for {MIN_SECRET_BYTES} to 64 random bytes")
    return secret
