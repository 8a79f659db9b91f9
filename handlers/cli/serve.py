"""``seedance-relay serve``: API, worker and reconciler in one process."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from handlers.app.runtime import LocalRuntime
from handlers.app.settings import Settings
from handlers.base.errors import ConfigurationError
from handlers.base.logs import configure, get_logger
from handlers.cli.remote import DEFAULT_URL
from handlers.cli.sandbox import switch_options
from handlers.net.server import ReadyServer, ServerLimits, bind, server_config, tune_gc_for_serving
from handlers.sandbox.settings import SandboxSettings

__all__ = ["next_command", "serve", "server_limits"]


def server_limits(settings: Settings) -> ServerLimits:
    """The connection limits ``RELAY_MAX_HEADER_BYTES`` … ``RELAY_MAX_CONNECTIONS`` set."""
    return ServerLimits(max_header_bytes=settings.max_header_bytes, max_headers=settings.max_headers,
                        header_timeout=settings.header_timeout, body_timeout=settings.body_timeout,
                        max_connections=settings.max_connections)


def _check_provider(settings: Settings) -> None:
    if settings.evolink_api_key and not (settings.public_url or "").startswith("https://"):
        got = f"it is {settings.public_url!r}" if settings.public_url else "it is not set"
        raise ConfigurationError(
            f"EVOLINK_API_KEY is set, so RELAY_PUBLIC_URL must be the https URL where EvoLink reaches this relay "
            f"(e.g. https://relay.example.com), and {got}; unset EVOLINK_API_KEY to use the built-in sandbox")


def next_command(url: str, settings: Settings) -> str:
    """The ``submit`` line to try against this relay (with the variables it would need)."""
    env = []
    if url != DEFAULT_URL:
        env.append(f"RELAY_URL={url}")
    if settings.api_keys or settings.admin_keys:
        env.append("RELAY_API_KEY=<a key of RELAY_API_KEYS or RELAY_ADMIN_KEYS>")
    elif settings.data_dir != Path(".relay"):
        env.append(f"RELAY_DATA_DIR={shlex.quote(str(settings.data_dir))}")
    command = ("seedance-relay submit --model seedance-2.0-text-to-video "
               "--prompt 'A paper boat drifting down a rainy street' --duration 4 --wait")
    return " ".join([*env, command])


@click.command(short_help="Run the relay: API, ingest workers and reconciler in one process.")
@click.option("--host", default=None, help="Bind address [env RELAY_HOST, default 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [env RELAY_PORT, default 8000].")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where jobs, queues and videos live [env RELAY_DATA_DIR, default ./.relay].")
@switch_options
def serve(host: str | None, port: int | None, data_dir: Path | None, **switches: Any) -> None:
    """Run the relay on embedded defaults (SQLite, a folder, the sandbox without EVOLINK_API_KEY).

    Logs serve.ready once the port accepts connections, then the next command to try.
    """
    settings = Settings.from_env(host=host, port=port, data_dir=data_dir)
    configure(settings.log_level, settings.log_format)
    _check_provider(settings)
    log = get_logger("serve")
    listener = bind(settings.host, settings.port)  # before anything starts: a taken port is one clear error
    runtime = LocalRuntime(settings, sandbox=SandboxSettings.from_env(**switches)).start()
    settings = runtime.settings
    url = f"http://{settings.host}:{settings.port}"
    if settings.uses_sandbox:
        log.warning("serve.sandbox", message="no EVOLINK_API_KEY: using the built-in sandbox "
                    "provider (fake videos, no credits spent)", sandbox_url=settings.evolink_base_url)

    def ready() -> None:
        log.info("serve.ready", url=url, data_dir=str(settings.data_dir.resolve()),
                 key_file=None if settings.api_keys or settings.admin_keys else str(settings.data_dir / "api-key"))
        click.echo(f"relay ready on {url}; try:\n  {next_command(url, settings)}", err=True)

    try:
        app = runtime.app()
        tune_gc_for_serving()
        config = server_config(app, host=settings.host, port=settings.port, limits=server_limits(settings))
        ReadyServer(config, on_ready=ready).run(sockets=[listener])
    finally:
        listener.close()
        runtime.stop()
