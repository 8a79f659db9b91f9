"""``seedance-relay docs generate [--check]``: the generated pages under ``docs/``."""

from __future__ import annotations

from pathlib import Path

import click

from handlers.tooling.docgen import generate as generate_docs

__all__ = ["docs"]


@click.group()
def docs() -> None:
    """The documentation generated from the code."""


@docs.command(short_help="Regenerate the docs made from the code (--check: verify).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a generated file is stale.")
@click.option("--root", type=click.Path(file_okay=False, exists=True, path_type=Path), default=Path("."),
              show_default=True, help="The repository root (the folder that holds docs/).")
def generate(check: bool, root: Path) -> None:
    """Write docs/api.md, docs/events.md, docs/schemas/*.json and the limits table of docs/evolink.md.

    Prints each file that changed (with --check: each file that is stale).
    """
    if not (root / "docs" / "evolink.md").is_file():
        raise click.ClickException(f"no docs/evolink.md under {root.resolve()}; pass --root")
    try:
        changed = generate_docs(root, check=check)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in changed:
        click.echo(path)
    if check and changed:
        raise click.ClickException(f"{len(changed)} generated file(s) are stale; run `seedance-relay docs generate`")
