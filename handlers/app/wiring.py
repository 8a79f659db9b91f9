"""Build the relay from settings, in one place: ``build_relay(settings)``."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from handlers.app.metrics import FigureSink, MeteredProvider, RelayMetrics, StoreCollector
from handlers.app.relay import Relay
from handlers.app.settings import Settings
from handlers.base.errors import ConfigurationError
from handlers.base.logs import register_secret
from handlers.domain.admission import IN_FLIGHT_LIMIT, Throttle
from handlers.domain.events import ALL_TYPES, EVENT_TYPES, TENANT_FILTER, TYPE_PREFIX, full_type, short_type
from handlers.domain.pricing import DEFAULT_PRICE_TABLE, load_price_table
from handlers.domain.tenancy import DEFAULT_TENANT
from handlers.domain.tokens import TokenSigner
from handlers.net.download import ResultFetcher
from handlers.net.netguard import AddressPolicy
from handlers.ports import (
    BlobStore,
    BudgetLedger,
    EventBus,
    EventLog,
    JobStore,
    KeyStore,
    Provider,
    SlotPool,
    WorkQueue,
)
from handlers.provider.evolink.client import EvoLinkClient

if TYPE_CHECKING:
    from handlers.adapters.aws.names import AwsNames

__all__ = [
    "SANDBOX_KEY",
    "aws_names",
    "build_accounts",
    "build_event_log",
    "build_ports",
    "build_relay",
    "check_budget_tenants",
    "local_secret",
    "result_policy",
    "subscriber_filters",
    "watched_queues",
]

SANDBOX_KEY = "sk-evo-sandbox-local"


def local_secret(path: Path, nbytes: int = 32) -> str:
    """A secret kept in a private file beside the data (created on first use)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(nbytes))
        if not path.exists():
            os.replace(tmp, path)
    value = path.read_text().strip()
    register_secret(value)
    return value


def subscriber_filters(settings: Settings) -> dict[str, list[str]]:
    """Each subscriber's filter as the buses take it: full event types (or ``*``) and its ``tenant:`` items.

    A type may be named as :func:`~handlers.domain.events.full_type` reads it (``completed``,
    ``storyboard.completed`` or the full type); one the relay never publishes is a configuration error
    naming the subscriber and the accepted names."""
    filters = {}
    for name, items in settings.subscribers:
        tenants = [i for i in items if i.startswith(TENANT_FILTER)]
        named = [i for i in items if not i.startswith(TENANT_FILTER)]
        types = [ALL_TYPES] if ALL_TYPES in named else [_subscribed_type(name, n) for n in named]
        filters[name] = list(dict.fromkeys(types)) + tenants
    return filters


def _subscribed_type(subscriber: str, name: str) -> str:
    chosen = full_type(name)
    if chosen not in EVENT_TYPES:
        accepted = ", ".join(short_type(t) for t in EVENT_TYPES)
        raise ConfigurationError(f"RELAY_SUBSCRIBERS: subscriber {subscriber!r} names unknown event type {name!r}; "
                                 f"accepted: {ALL_TYPES}, {accepted} (or the full type, such as "
                                 f"{TYPE_PREFIX}completed)")
    return chosen


def result_policy(settings: Settings) -> AddressPolicy:
    """Results come over https from public hosts; the local sandbox is allow-listed by name."""
    if not settings.uses_sandbox:
        return AddressPolicy()
    parts = urlsplit(settings.evolink_base_url)
    return AddressPolicy(allowed_hosts=frozenset({parts.netloc}))


def _callback_base(settings: Settings) -> str:
    base = settings.public_url or f"http://127.0.0.1:{settings.port}"
    if not settings.uses_sandbox and not base.startswith("https://"):
        raise ConfigurationError("RELAY_PUBLIC_URL must be an https URL that EvoLink can reach "
                                 "(EvoLink sends callbacks over https only)")
    return base


Ports = tuple[JobStore, BlobStore, WorkQueue, EventBus, list[Callable[[], None]]]
Accounts = tuple[KeyStore, BudgetLedger, SlotPool, list[Callable[[], None]]]


def build_ports(settings: Settings, clock: Callable[[], float] = time.time) -> Ports:
    """Job store, blob store, ingest queue and event bus alone (plus their closers): for tools
    such as ``dlq`` that touch storage and queues but never the provider."""
    return (_aws_ports if settings.backend == "aws" else _local_ports)(settings, clock)


def build_relay(settings: Settings, *, provider: Provider | None = None,
                clock: Callable[[], float] = time.time, metrics_sink: FigureSink | None = None) -> Relay:
    """The relay on the backend ``settings.backend`` names (``local`` or ``aws``).

    Its metrics count every provider call; ``metrics_sink`` also gets every figure (EMF on Lambda).
    """
    jobs, blobs, queue, bus, closers = build_ports(settings, clock)
    keys, ledger, slots, account_closers = build_accounts(settings, clock)
    if settings.budgets:
        check_budget_tenants(settings, keys)
    prices = DEFAULT_PRICE_TABLE if settings.price_table is None else load_price_table(settings.price_table)
    client = None
    if provider is None:
        provider = client = EvoLinkClient(settings.evolink_api_key or SANDBOX_KEY, settings.evolink_base_url)
    metrics = RelayMetrics(sink=metrics_sink)
    metrics.watch(StoreCollector(jobs, lambda: watched_queues(settings, queue, bus)))
    fetcher = ResultFetcher(result_policy(settings), max_bytes=settings.download_max_bytes)
    relay = Relay(settings=settings, jobs=jobs, blobs=blobs, ingest_queue=queue, bus=bus,
                  provider=MeteredProvider(provider, metrics),
                  signer=TokenSigner.from_config(_callback_secrets(settings), required=settings.backend != "aws"),
                  fetcher=fetcher, callback_base=_callback_base(settings), metrics=metrics, clock=clock,
                  keys=keys, ledger=ledger, slots=slots, prices=prices,
                  throttle=Throttle(settings.max_in_flight or IN_FLIGHT_LIMIT))
    relay.closers += [fetcher.close, *closers, *account_closers]
    if client is not None:
        relay.closers.append(client.close)
    return relay


def check_budget_tenants(settings: Settings, store: KeyStore) -> None:
    """Refuse (one line) a budget for a tenant that no key belongs to: most likely a typo."""
    stored = store.keys()
    known = {DEFAULT_TENANT, *settings.configured_tenants(), *(key.tenant for key in stored)}
    for tenant in sorted(set(settings.budgets) - known):
        raise ConfigurationError(f"RELAY_BUDGETS: tenant {tenant!r} has no key (in RELAY_API_KEYS, RELAY_ADMIN_KEYS "
                                 "or made with `seedance-relay keys create`)")


def build_accounts(settings: Settings, clock: Callable[[], float] = time.time) -> Accounts:
    """The run-time API keys, the budget ledger and the slot pool (plus their closers): in the job store's
    database (SQLite file, or DynamoDB table), the local slot pool in a file of its own; for the relay and for
    tools such as ``keys`` and ``tenants``."""
    if settings.backend == "aws":
        from handlers.adapters.aws import DynamoBudgetLedger, DynamoKeyStore, DynamoSlotPool, aws_clients

        names = aws_names(settings)
        dynamodb = aws_clients(names, endpoint_url=settings.aws_endpoint_url).dynamodb
        return (DynamoKeyStore(dynamodb, names.table), DynamoBudgetLedger(dynamodb, names.table, clock=clock),
                DynamoSlotPool(dynamodb, names.table), [])
    from handlers.adapters.local import SqliteBudgetLedger, SqliteKeyStore, SqliteSlotPool

    db = _local_database(settings)
    keys, ledger = SqliteKeyStore(db), SqliteBudgetLedger(db, clock=clock)
    slots = SqliteSlotPool(settings.data_dir / "slots.sqlite3", legacy=db)
    return keys, ledger, slots, [keys.close, ledger.close, slots.close]


def _local_database(settings: Settings) -> Path:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings.data_dir / "relay.sqlite3"


def watched_queues(settings: Settings, ingest: WorkQueue, bus: EventBus) -> dict[str, WorkQueue]:
    """The queues whose depth and dead letters ``/metrics`` shows: ``ingest`` and ``subscriber:<name>``."""
    return {"ingest": ingest, **{f"subscriber:{name}": bus.subscriber(name) for name, _ in settings.subscribers}}


def _callback_secrets(settings: Settings) -> tuple[str, ...]:
    if settings.callback_secrets:
        return settings.callback_secrets
    if settings.backend == "aws":
        return ()  # functions that sign or verify callbacks are given RELAY_CALLBACK_SECRET_PARAM
    return (f"k1:{local_secret(settings.data_dir / 'callback-secret')}",)


def _local_ports(settings: Settings, clock: Callable[[], float]) -> Ports:
    from handlers.adapters.local import FolderBlobStore, SqliteEventBus, SqliteJobStore, SqliteWorkQueue

    db = _local_database(settings)
    jobs, blobs = SqliteJobStore(db, clock=clock), FolderBlobStore(settings.data_dir / "blobs")
    queue = SqliteWorkQueue(db, "ingest", visibility_timeout=settings.queue_visibility_timeout,
                            max_receives=settings.queue_max_receives, clock=clock)
    bus = SqliteEventBus(db, subscriber_filters(settings), max_receives=settings.queue_max_receives, clock=clock,
                         visibility_timeout=settings.queue_visibility_timeout)
    return jobs, blobs, queue, bus, [jobs.close, queue.close, bus.close]


def _aws_ports(settings: Settings, clock: Callable[[], float]) -> Ports:
    from handlers.adapters.aws import aws_clients, build_aws_adapters

    names = aws_names(settings)
    jobs, blobs, queue, bus = build_aws_adapters(
        aws_clients(names, endpoint_url=settings.aws_endpoint_url), names, subscriber_filters(settings), clock=clock,
        max_receives=settings.queue_max_receives, visibility_timeout=int(settings.queue_visibility_timeout),
        event_retention_days=settings.event_retention, job_retention_days=settings.job_retention)
    return jobs, blobs, queue, bus, []


def build_event_log(settings: Settings, clock: Callable[[], float] = time.time) -> tuple[EventLog, Callable[[], None]]:
    """The log of the events the bus published (and its closer), kept ``RELAY_EVENT_RETENTION`` days:
    for ``events replay``."""
    if settings.backend == "aws":
        from handlers.adapters.aws import aws_clients
        from handlers.adapters.aws.eventlog import DynamoEventLog

        names = aws_names(settings)
        dynamodb = aws_clients(names, endpoint_url=settings.aws_endpoint_url).dynamodb
        return DynamoEventLog(dynamodb, names.table, retention_days=settings.event_retention, clock=clock), _nothing
    from handlers.adapters.local import SqliteEventLog

    log = SqliteEventLog(_local_database(settings), retention_days=settings.event_retention, clock=clock)
    return log, log.close


def _nothing() -> None:
    """Nothing to close."""


def aws_names(settings: Settings) -> AwsNames:
    """Where the AWS resources are, as ``RELAY_TABLE`` … ``RELAY_KMS_KEY_ID`` and ``AWS_REGION`` say."""
    from handlers.adapters.aws.names import AwsNames

    return AwsNames(table=settings.aws_table, bucket=settings.aws_bucket, ingest_queue=settings.aws_ingest_queue,
                    requests_queue=settings.aws_requests_queue, topic=settings.aws_topic,
                    subscriber_prefix=settings.aws_subscriber_queue_prefix, kms_key_id=settings.aws_kms_key_id,
                    region=settings.aws_region)
