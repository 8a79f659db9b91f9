"""``seedance-relay keys create|list|revoke``: API keys, on the backend itself (local or AWS).

These commands open the relay's storage directly, as ``dlq`` does, rather than calling the API, so
that the first admin key can be made without having one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import click

from handlers.app.settings import Settings
from handlers.base.errors import InvalidRequest
from handlers.base.logs import configure
from handlers.domain.tenancy import ApiKey, Role
from handlers.ports import KeyStore
from handlers.usecases.keys import create_key, key_record, list_keys, revoke_key

__all__ = ["keys"]

BY = "cli"  # who asked, in the log line of a created or revoked key
_COLUMNS = ("ID", "TENANT", "ROLE", "CREATED (UTC)", "REVOKED (UTC)")
_as_json = click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")


@click.group(short_help="API keys: create, list and revoke (on the backend).")
def keys() -> None:
    """API keys made at run time, kept in the relay's storage (RELAY_BACKEND: the local database
    under RELAY_DATA_DIR, or the DynamoDB table RELAY_TABLE). Only a hash of each key is stored:
    `create` shows the key once. Keys set in RELAY_API_KEYS and RELAY_ADMIN_KEYS are not listed."""
    configure("warning")  # stdout is the commands' output; logs (warnings and worse) go to stderr


@contextmanager
def _store(*, create: bool) -> Iterator[KeyStore]:
    """The key store ``RELAY_BACKEND`` names; a local one only if its database exists, unless ``create``."""
    settings = Settings.from_env()
    if settings.backend == "aws":
        from handlers.adapters.aws import DynamoKeyStore, aws_clients
        from handlers.app.wiring import aws_names

        names = aws_names(settings)
        yield DynamoKeyStore(aws_clients(names, endpoint_url=settings.aws_endpoint_url).dynamodb, names.table)
        return
    from handlers.adapters.local import SqliteKeyStore

    database = settings.data_dir / "relay.sqlite3"
    if not create and not database.exists():
        raise click.ClickException(f"no relay data at {settings.data_dir} (RELAY_DATA_DIR); "
                                   "`seedance-relay keys create` or `serve` makes it")
    store = SqliteKeyStore(database)
    try:
        yield store
    finally:
        store.close()


@keys.command("create", short_help="Make a key of TENANT; prints it once.")
@click.argument("tenant")
@click.option("--role", type=click.Choice([role.value for role in Role]), default=Role.SUBMITTER.value,
              show_default=True, help="admin: everything, every tenant; submitter: creates and reads its tenant's "
              "jobs; reader: reads its tenant's jobs.")
@_as_json
def create(tenant: str, role: str, as_json: bool) -> None:
    """Make a key of TENANT (a-z, 0-9, _ and -) and print it, with its id. The key is shown only this
    once: the relay keeps its hash, never the key."""
    with _store(create=True) as store:
        try:
            key, plain = create_key(store, tenant, role, time.time(), by=BY)
        except InvalidRequest as exc:
            raise click.BadParameter(exc.violations[0].message, param_hint="TENANT") from exc
    if as_json:
        click.echo(json.dumps({**key_record(key), "key": plain}))
        return
    for name, value in (("id", key.id), ("tenant", key.tenant), ("role", key.role.value), ("key", plain)):
        click.echo(f"{name:<7} {value}")
    click.echo("The key is shown only this once; the relay keeps only its hash.", err=True)


@keys.command("list", short_help="Every key made here (never the keys themselves).")
@_as_json
def list_command(as_json: bool) -> None:
    """Every key made with `keys create` or the API, oldest first: id, tenant, role, when it was made
    and revoked (UTC). The keys themselves are not stored, so they are never shown."""
    with _store(create=False) as store:
        stored = list_keys(store)
    if as_json:
        for key in stored:
            click.echo(json.dumps(key_record(key)))
        return
    _table([_COLUMNS, *(_row(key) for key in stored)])


@keys.command("revoke", short_help="Revoke the key ID at once.")
@click.argument("key_id", metavar="ID")
@_as_json
def revoke(key_id: str, as_json: bool) -> None:
    """Revoke the key ID (as `keys list` shows it): from now on it gets 401, like an unknown key.
    Revoking a revoked key changes nothing."""
    with _store(create=False) as store:
        key = revoke_key(store, key_id, time.time(), by=BY)
    if as_json:
        click.echo(json.dumps(key_record(key)))
        return
    click.echo(f"revoked {key.id} (tenant {key.tenant}, role {key.role.value}) at {_when(key.revoked_at)} UTC")


def _when(value: float | None) -> str:
    """A time as ``2026-05-01 12:00:03`` (UTC), or ``-``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value)) if value is not None else "-"


def _row(key: ApiKey) -> tuple[str, ...]:
    return key.id, key.tenant, key.role.value, _when(key.created_at), _when(key.revoked_at)


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
