"""Talking to a running relay from the command line: ``RELAY_URL`` and ``RELAY_API_KEY``."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

import click
import httpx

from handlers import __version__
from handlers.app.settings import DEFAULT_RELAY_URL, Settings

__all__ = ["RelayClient", "relay_client"]

DEFAULT_URL = DEFAULT_RELAY_URL


class RelayClient:
    """The relay's HTTP API, with its error bodies turned into clear CLI errors."""

    def __init__(self, url: str, key: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  headers={"Authorization": f"Bearer {key}",
                                           "User-Agent": f"seedance-relay-cli/{__version__}"})

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach the relay at {self.url}: {exc}") from exc
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code >= 400 and "error" in body:
            raise RelayAnswer(response.status_code, body["error"], body)
        response.raise_for_status()
        return body

    def upload(self, path: Path) -> str:
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with path.open("rb") as handle:
            body = self.call("POST", "/v1/uploads", content=handle.read(), headers={"Content-Type": content_type})
        return str(body["url"])


class RelayAnswer(click.ClickException):
    """An error answer from the relay, shown with every violation it lists; ``error`` is its ``error`` object and
    ``body`` the whole answer (``{"error": error}`` when not given)."""

    exit_code = 1

    def __init__(self, status: int, error: dict[str, Any], body: dict[str, Any] | None = None) -> None:
        lines = [f"{status} {error.get('code')}: {error.get('message')}"]
        lines += [f"  {e['field']}: {e['message']} ({e['code']})" for e in error.get("errors", [])]
        super().__init__("\n".join(lines))
        self.status = status
        self.error = error
        self.body = body if body is not None else {"error": error}


def relay_client(url: str | None, key: str | None) -> RelayClient:
    """A client for the relay at ``url`` with ``key``: flag, else ``RELAY_URL``/``RELAY_API_KEY``, else defaults."""
    settings = Settings.from_env(relay_url=url, relay_api_key=key)
    url, key = settings.relay_url, settings.relay_api_key or _local_key(settings)
    if not key:
        raise click.UsageError("no API key: set RELAY_API_KEY (or run `seedance-relay serve` here, which "
                               f"writes {settings.data_dir / 'api-key'})")
    return RelayClient(url, key)


def _local_key(settings: Settings) -> str | None:
    path = settings.data_dir / "api-key"
    return path.read_text().strip() if path.exists() else None
