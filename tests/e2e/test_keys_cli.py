"""``seedance-relay keys`` as a real process on the local backend (and on DynamoDB under moto): the key printed
once and stored as its hash, the list, revocation, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.adapters.aws import AwsNames, DynamoKeyStore, aws_clients
from handlers.adapters.aws.bootstrap import ensure_table
from handlers.adapters.local import SqliteKeyStore
from handlers.domain.tenancy import Role, key_digest

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).with_name("seedance-relay"))


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "EVOLINK_", "SANDBOX_", "AWS_"))}
    return subprocess.run([EXE, "keys", *args], env={**clean, **env}, capture_output=True, text=True, timeout=60)


def ok(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = run(*args, env=env)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def local(tmp_path: Path) -> dict[str, str]:
    return {"RELAY_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[SqliteKeyStore]:
    """The key store the commands wrote to (the relay's database under RELAY_DATA_DIR)."""
    store = SqliteKeyStore(tmp_path / "data" / "relay.sqlite3")
    yield store
    store.close()


def test_create_prints_the_key_once_and_stores_only_its_hash(local: dict[str, str], stored: SqliteKeyStore,
                                                             tmp_path: Path) -> None:
    done = ok("create", "acme", "--role", "admin", env=local)
    lines = dict(line.split(maxsplit=1) for line in done.stdout.splitlines())
    assert set(lines) == {"id", "tenant", "role", "key"} and (lines["tenant"], lines["role"]) == ("acme", "admin")
    assert "shown only this once" in done.stderr and lines["key"] not in done.stderr
    key = stored.key_by_digest(key_digest(lines["key"]))
    assert key is not None and (key.id, key.tenant, key.role) == (lines["id"], "acme", Role.ADMIN)
    database = b"".join(path.read_bytes() for path in (tmp_path / "data").glob("relay.sqlite3*"))
    assert lines["key"].encode() not in database


def test_create_json_is_the_record_and_the_key(local: dict[str, str], stored: SqliteKeyStore) -> None:
    made = json.loads(ok("create", "acme", "--json", env=local).stdout)
    assert set(made) == {"id", "tenant", "role", "created_at", "revoked_at", "key"}
    assert (made["tenant"], made["role"], made["revoked_at"]) == ("acme", "submitter", None)
    assert stored.key_by_digest(key_digest(made["key"])) is not None


def test_list_is_a_table_of_every_key_without_the_keys(local: dict[str, str]) -> None:
    first = json.loads(ok("create", "acme", "--json", env=local).stdout)
    second = json.loads(ok("create", "bravo-2", "--role", "reader", "--json", env=local).stdout)
    done = ok("list", env=local)
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["ID", "TENANT", "ROLE", "CREATED", "(UTC)", "REVOKED", "(UTC)"]
    cells = [row.split() for row in rows]
    assert [(c[0], c[1], c[2], c[-1]) for c in cells] == [(first["id"], "acme", "submitter", "-"),
                                                           (second["id"], "bravo-2", "reader", "-")]
    assert first["created_at"][:10] == cells[0][3]
    assert first["key"] not in done.stdout and key_digest(first["key"]) not in done.stdout


def test_revoke_marks_the_key_revoked_and_again_changes_nothing(local: dict[str, str],
                                                                stored: SqliteKeyStore) -> None:
    made = json.loads(ok("create", "acme", "--json", env=local).stdout)
    said = ok("revoke", made["id"], env=local).stdout
    first = json.loads(ok("list", "--json", env=local).stdout)
    again = json.loads(ok("revoke", made["id"], "--json", env=local).stdout)
    assert said.startswith(f"revoked {made['id']} (tenant acme, role submitter) at ")
    assert first["revoked_at"] is not None and again == first
    key = stored.key_by_digest(key_digest(made["key"]))
    assert key is not None and key.revoked


def test_list_shows_a_revoked_keys_time(local: dict[str, str]) -> None:
    made = json.loads(ok("create", "acme", "--json", env=local).stdout)
    revoked = json.loads(ok("revoke", made["id"], "--json", env=local).stdout)
    [row] = ok("list", env=local).stdout.splitlines()[1:]
    assert row.endswith(revoked["revoked_at"][:19].replace("T", " "))


@pytest.mark.parametrize(("args", "code", "says"), [
    (("create", "Acme Corp"), 2, ("TENANT", "'Acme Corp' must be 1-63 of a-z 0-9 _ -")),
    (("create", "acme", "--role", "owner"), 2, ("--role", "'owner' is not one of", "admin", "reader")),
    (("create",), 2, ("Missing argument 'TENANT'",)),
    (("revoke",), 2, ("Missing argument 'ID'",)),
    (("revoke", "key_000000000000"), 1, ("error: no key 'key_000000000000'",)),
    (("list",), 1, ("no relay data at", "RELAY_DATA_DIR")),
])
def test_a_mistake_is_one_clear_error(local: dict[str, str], args: tuple[str, ...], code: int,
                                      says: tuple[str, ...]) -> None:
    if args[0] == "revoke" and len(args) > 1:
        ok("create", "acme", env=local)  # the database exists; the key does not
    done = run(*args, env=local)
    assert "Traceback" not in done.stderr and done.returncode == code, done.stderr
    assert all(text in done.stderr for text in says), done.stderr
    assert len(done.stderr.strip().splitlines()) <= 4, done.stderr


@pytest.mark.integration
def test_on_aws_the_keys_are_in_the_job_table(moto_server: str, tmp_path: Path) -> None:
    """RELAY_BACKEND=aws: the same commands on the DynamoDB table RELAY_TABLE."""
    table = f"keys-{uuid.uuid4().hex[:12]}"
    client = aws_clients(AwsNames(), endpoint_url=moto_server).dynamodb
    ensure_table(client, table)
    env = {"RELAY_BACKEND": "aws", "RELAY_TABLE": table, "AWS_ENDPOINT_URL": moto_server,
           "RELAY_DATA_DIR": str(tmp_path / "unused"),
           **{k: v for k, v in os.environ.items() if k.startswith("AWS_") and k != "AWS_ENDPOINT_URL"}}
    made = json.loads(ok("create", "acme", "--role", "reader", "--json", env=env).stdout)
    revoked = json.loads(ok("revoke", made["id"], "--json", env=env).stdout)
    listed = [json.loads(line) for line in ok("list", "--json", env=env).stdout.splitlines()]
    key = DynamoKeyStore(client, table).key_by_digest(key_digest(made["key"]))
    assert listed == [revoked] and key is not None and key.revoked and key.role is Role.READER
    assert not (tmp_path / "unused").exists()


@pytest.mark.integration
def test_on_aws_a_missing_table_is_one_line(moto_server: str) -> None:
    env = {"RELAY_BACKEND": "aws", "RELAY_TABLE": f"absent-{uuid.uuid4().hex[:8]}", "AWS_ENDPOINT_URL": moto_server,
           **{k: v for k, v in os.environ.items() if k.startswith("AWS_") and k != "AWS_ENDPOINT_URL"}}
    done = run("list", env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: list the API keys: ResourceNotFoundException"), done.stderr
