"""The ``seedance-relay`` command line.

No user mistake ends in a traceback: a bad flag is click's usage error (exit 2), a bad setting
or a taken port is one ``error:`` line (exit 2), any other error the relay raises on purpose
is one ``error:`` line (exit 1). Unknown ``RELAY_*`` variables get one warning each.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from handlers import __version__
from handlers.app.settings import unknown_variables
from handlers.base.errors import ConfigurationError, RelayError
from handlers.cli.demo import demo
from handlers.cli.docs import docs
from handlers.cli.events import events
from handlers.cli.gc import gc
from handlers.cli.infra import infra
from handlers.cli.jobs import dlq, jobs
from handlers.cli.keys import keys
from handlers.cli.sandbox import sandbox
from handlers.cli.serve import serve
from handlers.cli.storyboard import storyboard
from handlers.cli.submit import submit
from handlers.cli.tenants import tenants
from handlers.cli.validate import validate

__all__ = ["EXIT_CONFIGURATION", "EXIT_FAILURE", "main"]

EXIT_FAILURE = 1  # the work failed: an invalid request, a failed job, an error answer
EXIT_CONFIGURATION = 2  # usage or configuration: a bad flag, file, setting or port


class RelayGroup(click.Group):
    """A click group that turns the relay's own errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RelayError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(EXIT_CONFIGURATION if isinstance(exc, ConfigurationError) else EXIT_FAILURE)


@click.group(cls=RelayGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="seedance-relay")
def main() -> None:
    """Seedance 2.0 video generation as an event-driven pipeline."""
    for sentence in unknown_variables(os.environ):
        click.echo(f"warning: {sentence}", err=True)


main.add_command(validate)
main.add_command(sandbox)
main.add_command(serve)
main.add_command(events)
main.add_command(demo)
main.add_command(infra)
main.add_command(submit)
main.add_command(storyboard)
main.add_command(jobs)
main.add_command(dlq)
main.add_command(keys)
main.add_command(tenants)
main.add_command(docs)
main.add_command(gc)
