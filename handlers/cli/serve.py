"""``seedance-relay serve``: API, worker and reconciler in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import uvicorn

from handlers.cli.sandbox import switch_options
from handlers.logs import configure, get_logger
from handlers.runtime import LocalRuntime
from handlers.sandbox.settings import SandboxSettings
from handlers.server import tune_gc_for_serving
from handlers.settings import Settings

__all__ = ["serve"]


@click.command()
@click.option("--host", default=None, help="Bind address [env RELAY_HOST, default 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port [env RELAY_PORT, default 8000].")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where jobs, queues and videos live [env RELAY_DATA_DIR, default ./.relay].")
@switch_options
def serve(host: str | None, port: int | None, data_dir: Path | None, **switches: Any) -> None:
    """Run the relay on embedded defaults (SQLite, a folder, the sandbox without EVOLINK_API_KEY)."""
    settings = Settings.from_env(host=host, port=port, data_dir=data_dir)
    configure(settings.log_level, settings.log_format)
    log = get_logger("serve")
    runtime = LocalRuntime(settings, sandbox=SandboxSettings.from_env(**switches)).start()
    settings = runtime.settings
    url = f"http://{settings.host}:{settings.port}"
    if settings.uses_sandbox:
        log.warning("serve.sandbox", message="no EVOLINK_API_KEY: using the built-in sandbox "
                    "provider (fake videos, no credits spent)", sandbox_url=settings.evolink_base_url)
    log.info("serve.ready", url=url, data_dir=str(settings.data_dir.resolve()),
             key_file=None if settings.api_keys else str(settings.data_dir / "api-key"))
    try:
        app = runtime.app()
        tune_gc_for_serving()
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                    access_log=False)  # access lines would carry callback tokens past the redactor
    finally:
        runtime.stop()
