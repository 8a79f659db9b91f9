"""The ``seedance-relay`` command line."""

from __future__ import annotations

import click

from handlers import __version__
from handlers.cli.demo import demo
from handlers.cli.docs import docs
from handlers.cli.events import events
from handlers.cli.infra import infra
from handlers.cli.jobs import dlq, jobs
from handlers.cli.sandbox import sandbox
from handlers.cli.serve import serve
from handlers.cli.submit import submit
from handlers.cli.validate import validate

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="seedance-relay")
def main() -> None:
    """Seedance 2.0 video generation as an event-driven pipeline."""


main.add_command(validate)
main.add_command(sandbox)
main.add_command(serve)
main.add_command(events)
main.add_command(demo)
main.add_command(infra)
main.add_command(submit)
main.add_command(jobs)
main.add_command(dlq)
main.add_command(docs)
