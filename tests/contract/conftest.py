"""Contract fixtures: every port's suite runs against each backend named in ``params``.

Each fixture looks its backend up in a table of builders keyed by backend name: ``local``
(SQLite files and a folder) and ``aws`` (the AWS adapters against moto in server mode,
marked ``integration``). To add a backend, add a builder to each table and the name to
``BACKENDS``; a builder that cannot honour a fake clock (SQS keeps its own time) should
``pytest.skip`` when handed one, as the aws queue and bus builders do.
Queue builders return a *recipe*, a picklable zero-argument callable, so a test can build
the same queue again in another process.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from handlers.adapters.aws import AwsClients, AwsNames, S3BlobStore, SqsWorkQueue, aws_clients, build_aws_adapters
from handlers.adapters.aws.blobs import MIN_PART_SIZE
from handlers.adapters.aws.bootstrap import bootstrap, ensure_bucket, ensure_queue, ensure_table
from handlers.adapters.aws.jobs import DynamoJobStore
from handlers.adapters.local import FolderBlobStore, SqliteEventBus, SqliteJobStore, SqliteWorkQueue
from handlers.ports import BlobStore, EventBus, JobStore, WorkQueue
from tests.support.fakes import Clock

QueueRecipe = Callable[[], WorkQueue]


FakeClock = Clock


def _clocked(clock: FakeClock | None) -> dict[str, Any]:
    return {"clock": clock.now, "sleep": clock.sleep} if clock is not None else {}


def _local_queue(folder: Path, name: str, visibility_timeout: float, max_receives: int,
                 clock: FakeClock | None) -> QueueRecipe:
    return functools.partial(SqliteWorkQueue, folder / "queues.db", name,
                             visibility_timeout=visibility_timeout, max_receives=max_receives,
                             **_clocked(clock))


def _local_bus(folder: Path, subscribers: Mapping[str, Sequence[str]], visibility_timeout: float,
               clock: FakeClock | None) -> EventBus:
    return SqliteEventBus(folder / "events.db", subscribers, visibility_timeout=visibility_timeout,
                          **_clocked(clock))


def _local_blob_leftovers(store: FolderBlobStore) -> list[str]:
    """Files under the root that are neither objects nor their sidecars."""
    return sorted(os.path.relpath(os.path.join(folder, name), store.root)
                  for folder, _, names in os.walk(store.root) for name in names if name.startswith("."))


# --- aws: the AWS adapters against moto in server mode ----------------------------------------
# The aws backend's fixtures request ``aws_endpoint``, which points ``AWS_ENDPOINT_URL`` at the
# session's moto server for the test; the builders read it as production does (through boto3),
# and name every resource after the test's ``tmp_path``, so tests never share one.

SQS_KEEPS_ITS_OWN_TIME = ("SQS keeps its own time, a fake clock cannot move it "
                          "(the same behaviours run on real time in tests/integration/test_aws_queue.py)")


@functools.cache
def _clients_for(endpoint: str) -> AwsClients:
    return aws_clients(AwsNames(), endpoint_url=endpoint)


def _aws_clients() -> AwsClients:
    return _clients_for(os.environ["AWS_ENDPOINT_URL"])


def aws_names(folder: Path) -> AwsNames:
    """Resource names of one test: a prefix derived from its ``tmp_path``."""
    prefix = "t" + hashlib.sha256(str(folder).encode()).hexdigest()[:12]
    return AwsNames(table=f"{prefix}-jobs", bucket=f"{prefix}-blobs", ingest_queue=f"{prefix}-ingest",
                    requests_queue=f"{prefix}-requests", topic=f"{prefix}-events",
                    subscriber_prefix=f"{prefix}-sub-")


def _aws_job_store(folder: Path) -> DynamoJobStore:
    clients, table = _aws_clients(), aws_names(folder).table
    ensure_table(clients.dynamodb, table)
    return DynamoJobStore(clients.dynamodb, table)


def _aws_blob_store(folder: Path) -> S3BlobStore:
    """Parts of S3's minimum size, so the multi-MiB contract stream goes up in parts."""
    clients, bucket = _aws_clients(), aws_names(folder).bucket
    ensure_bucket(clients.s3, bucket, region="us-east-1")
    return S3BlobStore(clients.s3, bucket, part_size=MIN_PART_SIZE)


def _s3_blob_leftovers(store: S3BlobStore) -> list[str]:
    """Keys of multipart uploads started and never completed or aborted."""
    uploads = _aws_clients().s3.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    return sorted(upload.get("Key", "") for upload in uploads)


def _sqs_queue(url: str, dlq_url: str) -> SqsWorkQueue:
    return SqsWorkQueue(_aws_clients().sqs, url, dlq_url=dlq_url)


def _aws_queue(folder: Path, name: str, visibility_timeout: float, max_receives: int,
               clock: FakeClock | None) -> QueueRecipe:
    if clock is not None:
        pytest.skip(SQS_KEEPS_ITS_OWN_TIME)
    queue = ensure_queue(_aws_clients().sqs, f"{aws_names(folder).ingest_queue}-{name}",
                         max_receives=max_receives, visibility_timeout=math.ceil(visibility_timeout))
    return functools.partial(_sqs_queue, queue.url, queue.dlq_url)


def _aws_bus(folder: Path, subscribers: Mapping[str, Sequence[str]], visibility_timeout: float,
             clock: FakeClock | None) -> EventBus:
    if clock is not None:
        pytest.skip(SQS_KEEPS_ITS_OWN_TIME)
    clients, names = _aws_clients(), aws_names(folder)
    bootstrap(clients, names, subscribers, visibility_timeout=math.ceil(visibility_timeout))
    return build_aws_adapters(clients, names, subscribers)[3]


JOB_STORES: dict[str, Callable[[Path], JobStore]] = {
    "local": lambda folder: SqliteJobStore(folder / "jobs.db"),
    "aws": _aws_job_store,
}
BLOB_STORES: dict[str, Callable[[Path], BlobStore]] = {
    "local": lambda folder: FolderBlobStore(folder / "blobs"),
    "aws": _aws_blob_store,
}
BLOB_LEFTOVERS: dict[type, Callable[[Any], list[str]]] = {
    FolderBlobStore: _local_blob_leftovers,
    S3BlobStore: _s3_blob_leftovers,
}
WORK_QUEUES: dict[str, Callable[[Path, str, float, int, FakeClock | None], QueueRecipe]] = {
    "local": _local_queue,
    "aws": _aws_queue,
}
EVENT_BUSES: dict[str, Callable[[Path, Mapping[str, Sequence[str]], float, FakeClock | None], EventBus]] = {
    "local": _local_bus,
    "aws": _aws_bus,
}
BACKENDS = ["local", pytest.param("aws", marks=pytest.mark.integration)]
EXACTLY_ONCE_BACKENDS = frozenset({"local"})
AT_LEAST_ONCE_ONLY = ("SQS standard queues deliver at least once, as the port promises, not exactly once: under "
                      "concurrency SQS may hand a message out twice; tests/integration/test_aws_queue.py checks "
                      "that concurrent receivers lose nothing")


def close(adapter: object) -> None:
    """Release what an adapter opened (``close`` is not part of the ports)."""
    closer = getattr(adapter, "close", None)
    if callable(closer):
        closer()


def blob_leftovers(store: BlobStore) -> list[str]:
    """Partial writes a failed ``put_stream`` left behind (temp files, unfinished uploads)."""
    return BLOB_LEFTOVERS[type(store)](store)


class QueueFactory:
    """Builds work queues on one backend location; closes them all at teardown.

    ``exactly_once`` says whether the backend hands each message to one receiver only,
    even under concurrency: stronger than the port's at-least-once, true of the local queue,
    not of SQS standard queues.
    """

    def __init__(self, build: Callable[[str, float, int, FakeClock | None], QueueRecipe], *,
                 exactly_once: bool = True) -> None:
        self._build = build
        self._opened: list[WorkQueue] = []
        self.exactly_once = exactly_once

    def recipe(self, name: str = "work", *, visibility_timeout: float = 30.0, max_receives: int = 5,
               clock: FakeClock | None = None) -> QueueRecipe:
        return self._build(name, visibility_timeout, max_receives, clock)

    def __call__(self, name: str = "work", *, visibility_timeout: float = 30.0, max_receives: int = 5,
                 clock: FakeClock | None = None) -> WorkQueue:
        queue = self.recipe(name, visibility_timeout=visibility_timeout, max_receives=max_receives,
                            clock=clock)()
        self._opened.append(queue)
        return queue

    def close(self) -> None:
        for queue in self._opened:
            close(queue)


class BusFactory:
    """Builds event buses on one backend location; closes them all at teardown."""

    def __init__(self, build: Callable[[Mapping[str, Sequence[str]], float, FakeClock | None], EventBus]
                 ) -> None:
        self._build = build
        self._opened: list[EventBus] = []

    def __call__(self, subscribers: Mapping[str, Sequence[str]], *, visibility_timeout: float = 30.0,
                 clock: FakeClock | None = None) -> EventBus:
        bus = self._build(subscribers, visibility_timeout, clock)
        self._opened.append(bus)
        return bus

    def close(self) -> None:
        for bus in self._opened:
            close(bus)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def aws_endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``AWS_ENDPOINT_URL`` points at the session's moto server for this test."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


def _backend(request: pytest.FixtureRequest) -> str:
    """The fixture's backend name, with what it needs set up (moto for ``aws``)."""
    if request.param == "aws":
        request.getfixturevalue("aws_endpoint")
    return str(request.param)


@pytest.fixture(params=BACKENDS)
def job_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    store = JOB_STORES[_backend(request)](tmp_path)
    yield store
    close(store)


@pytest.fixture(params=BACKENDS)
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    store = BLOB_STORES[_backend(request)](tmp_path)
    yield store
    close(store)


@pytest.fixture(params=BACKENDS)
def work_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QueueFactory]:
    backend = _backend(request)
    factory = QueueFactory(functools.partial(WORK_QUEUES[backend], tmp_path),
                           exactly_once=backend in EXACTLY_ONCE_BACKENDS)
    yield factory
    factory.close()


@pytest.fixture(params=BACKENDS)
def event_bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BusFactory]:
    factory = BusFactory(functools.partial(EVENT_BUSES[_backend(request)], tmp_path))
    yield factory
    factory.close()
