"""``seedance-relay sandbox --port N``: the EvoLink look-alike in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from handlers.base.logs import configure, get_logger
from handlers.domain.pricing import load_price_table
from handlers.net.server import ReadyServer, bind, server_config
from handlers.sandbox.app import create_sandbox_app
from handlers.sandbox.engine import SandboxEngine
from handlers.sandbox.settings import SWITCHES, SandboxSettings

__all__ = ["sandbox", "switch_options"]

_TYPES: dict[str, Any] = {
    "speed": click.FloatRange(min=0.0, min_open=True),
    "callback_drop": click.FloatRange(0.0, 1.0),
    "callback_duplicate": click.IntRange(min=0),
    "callback_delay": click.FloatRange(min=0.0),
    "fail_rate": click.FloatRange(0.0, 1.0),
    "fail_code": str,
    "wrong_output_rate": click.FloatRange(0.0, 1.0),
    "wrong_output": str,
    "create_error_rate": click.FloatRange(0.0, 1.0),
    "download_delay": click.FloatRange(min=0.0),
    "url_ttl": click.FloatRange(min=0.0),
    "quota": click.FloatRange(min=0.0),
    "max_concurrency": click.IntRange(min=1),
}


def switch_options(func: Any) -> Any:
    """Add one ``--flag`` per sandbox switch; without the flag, SandboxSettings reads its variable
    (so a bad value there is an error naming the variable, not the flag)."""
    for name, (env, help_text) in reversed(SWITCHES.items()):
        flag = "--" + name.replace("_", "-")
        func = click.option(flag, name, type=_TYPES[name], default=None, help=f"{help_text} [env {env}]")(func)
    return func


def sandbox_settings(data_dir: Path | None, **switches: Any) -> SandboxSettings:
    return SandboxSettings.from_env(data_dir=data_dir, **switches)


@click.command(short_help="Run the EvoLink look-alike provider on its own.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option("--port", type=click.IntRange(0, 65535), default=8100, show_default=True, help="Port to listen on.")
@click.option("--api-key", default=None,
              help="Accept only this bearer key [env SANDBOX_API_KEY, default: any non-empty key].")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where tasks and result videos live [env SANDBOX_DATA_DIR, default .relay/sandbox].")
@click.option("--price-table", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="RELAY_PRICE_TABLE", show_envvar=False,
              help="The price table tasks are billed by, as the relay's (docs/costs.md) [env RELAY_PRICE_TABLE, "
                   "default: the built-in table].")
@switch_options
def sandbox(host: str, port: int, api_key: str | None, data_dir: Path | None, price_table: Path | None,
            **switches: Any) -> None:
    """Run the EvoLink look-alike: same routes, errors, callbacks; real MP4 results."""
    configure()
    prices = load_price_table(price_table) if price_table is not None else None
    settings = sandbox_settings(data_dir, api_key=api_key, prices=prices, **switches)
    listener = bind(host, port)
    port = listener.getsockname()[1]  # --port 0 picks a free one
    engine = SandboxEngine(settings).start()

    def ready() -> None:
        get_logger("sandbox").info("sandbox.listening", url=f"http://{host}:{port}",
                                   note="EvoLink look-alike, not the real provider", speed=settings.speed)

    try:
        config = server_config(create_sandbox_app(engine), host=host, port=port)
        ReadyServer(config, on_ready=ready).run(sockets=[listener])
    finally:
        listener.close()
        engine.stop()
