"""The ``seedance-relay`` command line run in-process (click's runner) against a relay on a real socket."""

from __future__ import annotations

from collections.abc import Mapping

from click.testing import CliRunner, Result

from handlers.cli import main
from tests.support.pipeline import API_KEY, Pipeline

__all__ = ["pipeline_cli", "relay_cli"]


def relay_cli(url: str, key: str, *args: str, env: Mapping[str, str] | None = None) -> Result:
    """``seedance-relay ARGS`` with ``RELAY_URL`` and ``RELAY_API_KEY`` set (and ``env``); stdout and stderr apart."""
    return CliRunner().invoke(main, list(args), env={"RELAY_URL": url, "RELAY_API_KEY": key, **(env or {})})


def pipeline_cli(pipeline: Pipeline, *args: str) -> Result:
    """``seedance-relay ARGS`` against ``pipeline``'s relay, with its key and its environment."""
    assert pipeline.relay is not None, "the relay is not running"
    return relay_cli(pipeline.relay.url, API_KEY, *args, env=pipeline.env)
