"""KeyStore contract, on SQLite (the jobs' file) and on DynamoDB (the jobs' table): lookup by digest, listing
oldest first, idempotent revocation, refusal of a repeated id or digest, and no key ever in the stored data."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from handlers.adapters.aws import AwsNames, DynamoJobStore, DynamoKeyStore, aws_clients
from handlers.adapters.aws.bootstrap import ensure_table
from handlers.adapters.aws.keys import KEY_PREFIX, REGISTRY_ID
from handlers.adapters.local import SqliteJobStore, SqliteKeyStore
from handlers.base.errors import Conflict, NotFound
from handlers.domain.jobs import Job, JobStatus
from handlers.domain.tenancy import ApiKey, Role, key_digest, key_id_of
from handlers.ports import JobStore, KeyStore
from handlers.usecases.keys import create_key

T0 = 1_700_000_000.0
BACKENDS = ["local", pytest.param("aws", marks=pytest.mark.integration)]


@dataclass
class Backend:
    """A key store and a job store sharing one storage, and everything that storage holds, as text."""

    keys: KeyStore
    jobs: JobStore
    stored: Callable[[], str]
    close: Callable[[], None]


def _local(folder: Path) -> Backend:
    database = folder / "relay.sqlite3"
    keys, jobs = SqliteKeyStore(database), SqliteJobStore(database)

    def stored() -> str:
        with sqlite3.connect(database) as connection:
            rows = connection.execute("SELECT * FROM api_keys").fetchall()
        files = b"".join(path.read_bytes() for path in sorted(folder.glob("relay.sqlite3*")))
        return repr(rows) + files.decode("latin-1")

    def close() -> None:
        keys.close()
        jobs.close()

    return Backend(keys, jobs, stored, close)


def _aws(endpoint: str) -> Backend:
    client, table = aws_clients(AwsNames(), endpoint_url=endpoint).dynamodb, f"keys-{uuid.uuid4().hex[:12]}"
    ensure_table(client, table)

    def stored() -> str:  # a Scan, as only a test may do
        return json.dumps(client.scan(TableName=table, ConsistentRead=True)["Items"])

    return Backend(DynamoKeyStore(client, table), DynamoJobStore(client, table), stored, lambda: None)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    built = _aws(request.getfixturevalue("aws_endpoint")) if request.param == "aws" else _local(tmp_path)
    yield built
    built.close()


@pytest.fixture
def store(backend: Backend) -> KeyStore:
    return backend.keys


def api_key(name: str, *, created_at: float = T0, tenant: str = "acme", role: Role = Role.SUBMITTER) -> ApiKey:
    digest = key_digest(f"sr_{name}")
    return ApiKey(id=key_id_of(digest), tenant=tenant, role=role, digest=digest, created_at=created_at)


def test_an_added_key_is_found_by_its_digest(store: KeyStore) -> None:
    key = api_key("one", tenant="studio-7", role=Role.ADMIN)
    store.add_key(key)
    assert store.key_by_digest(key.digest) == key


def test_an_unknown_digest_is_none(store: KeyStore) -> None:
    store.add_key(api_key("one"))
    assert store.key_by_digest(key_digest("sr_other")) is None


def test_keys_lists_every_key_oldest_first(store: KeyStore) -> None:
    """Oldest first by ``created_at``, whatever the order they were added in."""
    added = [api_key("b", created_at=T0 + 2), api_key("a", created_at=T0), api_key("c", created_at=T0 + 1)]
    for key in added:
        store.add_key(key)
    assert store.keys() == sorted(added, key=lambda key: key.created_at)


def test_no_keys_list_empty(store: KeyStore) -> None:
    assert store.keys() == []


def test_revoke_sets_revoked_at_where_the_key_is_looked_up_and_listed(store: KeyStore) -> None:
    key, other = api_key("one"), api_key("two", created_at=T0 + 1)
    store.add_key(key)
    store.add_key(other)
    revoked = store.revoke_key(key.id, T0 + 60)
    assert revoked == replace(key, revoked_at=T0 + 60) and revoked.revoked
    assert store.key_by_digest(key.digest) == revoked
    assert store.keys() == [revoked, other]


def test_revoking_again_keeps_the_first_time(store: KeyStore) -> None:
    key = api_key("one")
    store.add_key(key)
    first = store.revoke_key(key.id, T0 + 60)
    assert store.revoke_key(key.id, T0 + 120) == first
    assert store.key_by_digest(key.digest) == first and store.keys() == [first]


def test_revoking_an_unknown_key_raises_not_found(store: KeyStore) -> None:
    store.add_key(api_key("one"))
    with pytest.raises(NotFound, match="key_nothing"):
        store.revoke_key("key_nothing", T0)


@pytest.mark.parametrize("clash", ["id", "digest"])
def test_a_key_with_a_stored_id_or_digest_is_refused_and_changes_nothing(store: KeyStore, clash: str) -> None:
    key = api_key("one")
    store.add_key(key)
    twin = replace(api_key("two", tenant="other", role=Role.ADMIN), **{clash: getattr(key, clash)})
    with pytest.raises(Conflict, match="already stored"):
        store.add_key(twin)
    assert store.keys() == [key] and store.key_by_digest(key.digest) == key


def test_keys_added_at_once_from_many_threads_are_all_stored(store: KeyStore) -> None:
    """Concurrent adds never lose one another (on DynamoDB they meet in one registry item)."""
    added = [api_key(f"k{n}", created_at=T0 + n) for n in range(8)]
    threads = [threading.Thread(target=store.add_key, args=(key,)) for key in added]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.keys() == added
    assert all(store.key_by_digest(key.digest) == key for key in added)


def test_a_created_key_is_nowhere_in_the_stored_data(backend: Backend) -> None:
    """Only its digest is stored: the key is in no row, item or byte of the storage."""
    key, plain = create_key(backend.keys, "acme", "submitter", T0)
    revoked = create_key(backend.keys, "acme", "reader", T0 + 1)
    backend.keys.revoke_key(revoked[0].id, T0 + 2)
    stored = backend.stored()
    assert key.digest in stored and revoked[0].digest in stored  # the reader does see the data
    assert plain not in stored and revoked[1] not in stored


def test_keys_share_the_jobs_storage_and_no_job_read_sees_them(backend: Backend) -> None:
    """Pages, counts, due jobs and job lookups answer jobs only, with keys in the same file or table."""
    key = api_key("one")
    backend.keys.add_key(key)
    job = Job(id="job_a", request={"prompt": "a cat"}, fingerprint="f" * 64, created_at=T0, updated_at=T0,
              check_at=T0)
    backend.jobs.create(job)
    backend.keys.revoke_key(key.id, T0 + 1)
    assert [j.id for j in backend.jobs.page()[0]] == ["job_a"]
    assert backend.jobs.count(JobStatus.ACCEPTED, 10) == 1
    assert [j.id for j in backend.jobs.due(T0 + 10)] == ["job_a"]
    for item_id in (REGISTRY_ID, KEY_PREFIX + key.digest, key.id):
        with pytest.raises(NotFound):
            backend.jobs.get(item_id)
