"""``seedance-relay docs generate [--check]``: the generated pages under ``docs/`` and the generated blocks."""

from __future__ import annotations

from pathlib import Path

import click

from handlers.tooling.docgen import BLOCKS
from handlers.tooling.docgen import generate as generate_docs

__all__ = ["docs"]


@click.group()
def docs() -> None:
    """The documentation generated from the code."""


@docs.command(short_help="Regenerate the docs made from the code (--check: verify).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a generated file is stale.")
@click.option("--root", type=click.Path(file_okay=False, exists=True, path_type=Path), default=Path("."),
              show_default=True, help="The repository root (the folder that holds README.md and docs/).")
def generate(check: bool, root: Path) -> None:
    """Write docs/api.md, docs/events.md, docs/lifecycle.md, docs/schemas/*.json, and the generated blocks of
    hand-written pages (the state diagram in README.md, the limits table of docs/evolink.md).

    Prints each file that changed (with --check: each file that is stale).
    """
    missing = sorted({block.path for block in BLOCKS if not (root / block.path).is_file()})
    if missing:
        raise click.ClickException(f"no {' or '.join(missing)} under {root.resolve()}; pass --root")
    try:
        changed = generate_docs(root, check=check)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in changed:
        click.echo(path)
    if check and changed:
        raise click.ClickException(f"{len(changed)} generated file(s) are stale; run `seedance-relay docs generate`")
