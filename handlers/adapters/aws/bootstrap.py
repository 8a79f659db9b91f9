"""Create the AWS resources (idempotently) and wire the four AWS adapters from names.

``bootstrap`` is deploy tooling for AWS-compatible endpoints (moto, LocalStack; on a real
account deploy ``serverless.yml``): it creates what is missing and puts every setting it
owns back to its value, so a second run changes nothing. ``build_aws_adapters`` makes
no resources: it resolves names to URLs and ARNs (a URL or ARN is used as given).
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from handlers.adapters.aws.blobs import S3BlobStore
from handlers.adapters.aws.bus import DynamoEventLedger, SnsEventBus
from handlers.adapters.aws.clients import AwsClients
from handlers.adapters.aws.errors import aws_errors, error_code
from handlers.adapters.aws.jobs import TABLE_SPEC, DynamoJobStore
from handlers.adapters.aws.names import AwsNames
from handlers.adapters.aws.queue import SqsWorkQueue, queue_url
from handlers.base.errors import NotFound, QueueError, StorageError
from handlers.domain.events import split_filter

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

__all__ = ["ALL_TYPES", "DLQ_RETENTION", "LIFECYCLE_RULE_ID", "BootstrapResult", "QueuePair", "bootstrap",
           "build_aws_adapters", "ensure_bucket", "ensure_queue", "ensure_subscriber", "ensure_table",
           "ensure_topic", "filter_policy", "topic_arn"]

ALL_TYPES = "*"
DLQ_RETENTION = 14 * 86_400
LIFECYCLE_RULE_ID = "abort-incomplete-multipart-uploads"
TABLE_WAIT = 120.0


@dataclass(frozen=True, slots=True)
class QueuePair:
    url: str
    arn: str
    dlq_url: str
    dlq_arn: str


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """What ``bootstrap`` made sure exists."""

    table: str
    bucket: str
    topic_arn: str
    ingest_queue: QueuePair
    requests_queue: QueuePair
    subscriber_queues: dict[str, QueuePair] = field(default_factory=dict)
    subscriptions: dict[str, str] = field(default_factory=dict)


def bootstrap(clients: AwsClients, names: AwsNames, subscribers: Mapping[str, Sequence[str]], *,
              max_receives: int = 8, visibility_timeout: int = 900) -> BootstrapResult:
    """Table, bucket, ingest and requests queues (with DLQs), topic and one subscribed queue per subscriber."""
    ensure_table(clients.dynamodb, names.table)
    ensure_bucket(clients.s3, names.bucket, region=names.region, kms_key_id=names.kms_key_id)
    queues = {name: ensure_queue(clients.sqs, name, max_receives=max_receives,
                                 visibility_timeout=visibility_timeout)
              for name in (names.ingest_queue, names.requests_queue)}
    topic_arn = ensure_topic(clients.sns, names.topic)
    subscriber_queues: dict[str, QueuePair] = {}
    subscriptions: dict[str, str] = {}
    for subscriber, types in subscribers.items():
        subscriber_queues[subscriber], subscriptions[subscriber] = ensure_subscriber(
            clients.sqs, clients.sns, topic_arn, names.subscriber_queue(subscriber), types,
            max_receives=max_receives, visibility_timeout=visibility_timeout)
    return BootstrapResult(table=names.table, bucket=names.bucket, topic_arn=topic_arn,
                           ingest_queue=queues[names.ingest_queue], requests_queue=queues[names.requests_queue],
                           subscriber_queues=subscriber_queues, subscriptions=subscriptions)


def ensure_table(client: DynamoDBClient, table: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """The job table as :data:`~handlers.adapters.aws.jobs.TABLE_SPEC` says, active, with TTL on; a table made
    by an older version gets the indexes it lacks, one at a time (as CloudFormation adds them)."""
    spec = copy.deepcopy(dict(TABLE_SPEC))
    ttl = spec.pop("TimeToLiveSpecification")
    with aws_errors(StorageError, f"create table {table!r}"):
        with contextlib.suppress(client.exceptions.ResourceInUseException):
            client.create_table(TableName=table, **spec)
        _wait_active(client, table, sleep)
        _add_missing_indexes(client, table, spec, sleep)
        status = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if status.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(TableName=table, TimeToLiveSpecification=ttl)


def _add_missing_indexes(client: DynamoDBClient, table: str, spec: Mapping[str, Any],
                         sleep: Callable[[float], None]) -> None:
    present = {index["IndexName"] for index in
               client.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])}
    for index in spec["GlobalSecondaryIndexes"]:
        if index["IndexName"] in present:
            continue
        client.update_table(TableName=table, AttributeDefinitions=spec["AttributeDefinitions"],
                            GlobalSecondaryIndexUpdates=[{"Create": index}])
        _wait_active(client, table, sleep)


def _wait_active(client: DynamoDBClient, table: str, sleep: Callable[[float], None]) -> None:
    waited = 0.0
    while True:
        description = client.describe_table(TableName=table)["Table"]
        indexes = description.get("GlobalSecondaryIndexes", [])
        if description.get("TableStatus") == "ACTIVE" and all(
                index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes):
            return
        if waited > TABLE_WAIT:
            raise StorageError(f"table {table!r} is not active after {TABLE_WAIT:.0f}s", code="table_not_active")
        sleep(1.0)
        waited += 1.0


def ensure_bucket(client: S3Client, bucket: str, *, region: str, kms_key_id: str | None = None) -> None:
    """The bucket, encrypted by default, closed to the public, sweeping unfinished uploads after a day."""
    with aws_errors(StorageError, f"create bucket {bucket!r}"):
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            if region == "us-east-1":
                client.create_bucket(Bucket=bucket)
            else:
                location = cast("BucketLocationConstraintType", region)
                client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": location})
        client.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": _default_encryption(kms_key_id),
             "BucketKeyEnabled": kms_key_id is not None}]})
        client.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
        _ensure_lifecycle_rule(client, bucket)


def _default_encryption(kms_key_id: str | None) -> Any:
    if kms_key_id:
        return {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key_id}
    return {"SSEAlgorithm": "AES256"}


def _ensure_lifecycle_rule(client: S3Client, bucket: str) -> None:
    """Put our rule in the bucket's lifecycle configuration, keeping any other rules there."""
    try:
        rules = client.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    except ClientError as exc:
        if error_code(exc) != "NoSuchLifecycleConfiguration":
            raise
        rules = []
    ours: Any = {"ID": LIFECYCLE_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": ""},
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
    kept: list[Any] = [rule for rule in rules if rule.get("ID") != LIFECYCLE_RULE_ID]
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [*kept, ours]})


def ensure_queue(client: SQSClient, name: str, *, max_receives: int, visibility_timeout: int) -> QueuePair:
    """Queue ``name`` and its DLQ (``AwsNames.dlq(name)``, kept 14 days), joined by a redrive policy."""
    with aws_errors(QueueError, f"create queue {name!r}"):
        dlq_url = client.create_queue(QueueName=AwsNames.dlq(name))["QueueUrl"]
        client.set_queue_attributes(QueueUrl=dlq_url, Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION)})
        dlq_arn = _queue_arn(client, dlq_url)
        url = client.create_queue(QueueName=name)["QueueUrl"]
        client.set_queue_attributes(QueueUrl=url, Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives})})
        return QueuePair(url=url, arn=_queue_arn(client, url), dlq_url=dlq_url, dlq_arn=dlq_arn)


def _queue_arn(client: SQSClient, url: str) -> str:
    return client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def ensure_topic(client: SNSClient, name: str) -> str:
    """The ARN of topic ``name`` (``CreateTopic`` is idempotent)."""
    with aws_errors(QueueError, f"create topic {name!r}"):
        return client.create_topic(Name=name)["TopicArn"]


def filter_policy(items: Sequence[str]) -> str:
    """The subscription's filter policy on the ``type`` attribute (none when ``"*"`` is wanted) and, when the
    filter names tenants (``tenant:<name>``), on the ``tenant`` attribute; ``"{}"`` when it has neither."""
    types, tenants = split_filter(items)
    policy = {} if ALL_TYPES in types else {"type": sorted(types)}
    if tenants:
        policy["tenant"] = sorted(tenants)
    return json.dumps(policy, separators=(",", ":")) if policy else "{}"


def ensure_subscriber(sqs: SQSClient, sns: SNSClient, topic_arn: str, queue: str, types: Sequence[str], *,
                      max_receives: int, visibility_timeout: int) -> tuple[QueuePair, str]:
    """The subscriber's queue (with DLQ), open to the topic, subscribed raw with its filter policy."""
    pair = ensure_queue(sqs, queue, max_receives=max_receives, visibility_timeout=visibility_timeout)
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "topic-sends", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": pair.arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]}
    with aws_errors(QueueError, f"open queue {queue!r} to {topic_arn}"):
        sqs.set_queue_attributes(QueueUrl=pair.url, Attributes={"Policy": json.dumps(policy)})
    attributes = {"RawMessageDelivery": "true", "FilterPolicy": filter_policy(types)}
    with aws_errors(QueueError, f"subscribe {queue!r} to {topic_arn}"):
        subscription = _subscription(sns, topic_arn, pair.arn)
        if subscription is None:
            if attributes["FilterPolicy"] == "{}":
                del attributes["FilterPolicy"]
            subscription = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=pair.arn,
                                         Attributes=attributes, ReturnSubscriptionArn=True)["SubscriptionArn"]
        else:
            for name, value in attributes.items():
                sns.set_subscription_attributes(SubscriptionArn=subscription, AttributeName=name,
                                                AttributeValue=value)
    return pair, subscription


def _subscription(sns: SNSClient, topic_arn: str, endpoint: str) -> str | None:
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for subscription in page.get("Subscriptions", []):
            if subscription.get("Endpoint") == endpoint and subscription.get("Protocol") == "sqs":
                return subscription["SubscriptionArn"]
    return None


class _QueueUrls(Mapping[str, str]):
    """Subscriber name → queue URL, looked up on first use (a Lambda that only publishes never asks)."""

    def __init__(self, sqs: SQSClient, names: AwsNames, subscribers: Sequence[str]) -> None:
        self._sqs, self._names, self._subscribers = sqs, names, tuple(subscribers)
        self._urls: dict[str, str] = {}

    def __getitem__(self, subscriber: str) -> str:
        if subscriber not in self._subscribers:
            raise KeyError(subscriber)
        if subscriber not in self._urls:
            self._urls[subscriber] = queue_url(self._sqs, self._names.subscriber_queue(subscriber))
        return self._urls[subscriber]

    def __iter__(self) -> Iterator[str]:
        return iter(self._subscribers)

    def __len__(self) -> int:
        return len(self._subscribers)


def topic_arn(sns: SNSClient, topic: str) -> str:
    """``topic`` if it is an ARN, else the ARN of the topic with that name (``NotFound`` if none)."""
    if topic.startswith("arn:"):
        return topic
    with aws_errors(QueueError, f"find topic {topic!r}"):
        for page in sns.get_paginator("list_topics").paginate():
            for listed in page.get("Topics", []):
                if listed["TopicArn"].rsplit(":", 1)[-1] == topic:
                    return listed["TopicArn"]
    raise NotFound(f"no SNS topic named {topic!r} (run `seedance-relay infra bootstrap`)")


def build_aws_adapters(clients: AwsClients, names: AwsNames, subscribers: Mapping[str, Sequence[str]], *,
                       clock: Callable[[], float] = time.time, max_receives: int = 8, visibility_timeout: int = 900,
                       event_retention_days: float = 30, job_retention_days: float = 90,
                       ) -> tuple[DynamoJobStore, S3BlobStore, SqsWorkQueue, SnsEventBus]:
    """Job store, blob store, ingest queue and event bus on the resources ``names`` points at
    (the bus logs each event for ``event_retention_days``; a finished job's record expires through the
    table's TTL ``job_retention_days`` after it ended).

    ``visibility_timeout`` is what every receive asks for; ``max_receives`` belongs to the
    queues' redrive policies (set by ``bootstrap`` or ``infra/``), which SQS enforces.
    """
    del max_receives  # SQS enforces it through the redrive policy
    jobs = DynamoJobStore(clients.dynamodb, names.table, clock=clock, ttl_days=job_retention_days)
    blobs = S3BlobStore(clients.s3, names.bucket, kms_key_id=names.kms_key_id)
    queue = SqsWorkQueue.from_name(clients.sqs, names.ingest_queue, visibility_timeout=visibility_timeout)
    bus = SnsEventBus(clients.sns, clients.sqs, topic_arn(clients.sns, names.topic),
                      _QueueUrls(clients.sqs, names, list(subscribers)),
                      ledger=DynamoEventLedger(clients.dynamodb, names.table, clock=clock,
                                               ttl_days=event_retention_days),
                      visibility_timeout=visibility_timeout)
    return jobs, blobs, queue, bus
