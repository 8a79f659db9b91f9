"""``bootstrap`` and ``build_aws_adapters`` against moto in server mode: every resource, every setting."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from typing import Any

import pytest

from handlers.adapters.aws import AwsClients, AwsNames, build_aws_adapters
from handlers.adapters.aws.bootstrap import LIFECYCLE_RULE_ID, BootstrapResult, QueuePair, bootstrap
from handlers.adapters.aws.jobs import TABLE_SPEC
from handlers.base.errors import NotFound
from handlers.domain.jobs import Job

pytestmark = pytest.mark.integration

COMPLETED = "ai.seedance-relay.job.completed"
FAILED = "ai.seedance-relay.job.failed"
SUBSCRIBERS = {"notify": [COMPLETED], "alerts": [FAILED, COMPLETED], "archive": ["*"]}


@pytest.fixture
def result(clients: AwsClients, names: AwsNames) -> BootstrapResult:
    return bootstrap(clients, names, SUBSCRIBERS, max_receives=4, visibility_timeout=120)


def queue_attributes(clients: AwsClients, url: str) -> dict[str, str]:
    return dict(clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])


def subscription_attributes(clients: AwsClients, arn: str) -> dict[str, str]:
    return dict(clients.sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"])


def test_bootstrap_twice_changes_nothing_and_does_not_fail(
        clients: AwsClients, names: AwsNames, result: BootstrapResult) -> None:
    again = bootstrap(clients, names, SUBSCRIBERS, max_receives=4, visibility_timeout=120)
    assert again == result
    assert len(clients.sns.list_subscriptions_by_topic(TopicArn=result.topic_arn)["Subscriptions"]) == 3
    rules = clients.s3.get_bucket_lifecycle_configuration(Bucket=names.bucket)["Rules"]
    assert [rule.get("ID") for rule in rules] == [LIFECYCLE_RULE_ID]
    assert json.loads(json.dumps(asdict(result)))["ingest_queue"]["url"] == result.ingest_queue.url


def test_the_table_has_its_key_indexes_billing_and_ttl(clients: AwsClients, names: AwsNames,
                                                       result: BootstrapResult) -> None:
    table = clients.dynamodb.describe_table(TableName=result.table)["Table"]
    assert table["KeySchema"] == TABLE_SPEC["KeySchema"]
    assert table.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST"
    indexes = {index["IndexName"]: (index["KeySchema"], index["Projection"])
               for index in table.get("GlobalSecondaryIndexes", [])}
    assert indexes == {index["IndexName"]: (index["KeySchema"], index["Projection"])
                       for index in TABLE_SPEC["GlobalSecondaryIndexes"]}
    ttl = clients.dynamodb.describe_time_to_live(TableName=names.table)["TimeToLiveDescription"]
    assert (ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")) == ("ENABLED", "expires_at")


def test_the_bucket_is_encrypted_private_and_sweeps_unfinished_uploads(clients: AwsClients,
                                                                      result: BootstrapResult) -> None:
    encryption = clients.s3.get_bucket_encryption(Bucket=result.bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    block = clients.s3.get_public_access_block(Bucket=result.bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}
    (rule,) = clients.s3.get_bucket_lifecycle_configuration(Bucket=result.bucket)["Rules"]
    assert (rule.get("Status"), rule.get("AbortIncompleteMultipartUpload")) == (
        "Enabled", {"DaysAfterInitiation": 1})


def test_a_kms_key_makes_the_bucket_default_to_sse_kms(clients: AwsClients, names: AwsNames) -> None:
    kms_names = AwsNames(**{**asdict(names), "kms_key_id": "alias/relay"})
    bootstrap(clients, kms_names, {})
    encryption = clients.s3.get_bucket_encryption(Bucket=names.bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/relay"}


def test_bootstrap_keeps_lifecycle_rules_it_does_not_own(clients: AwsClients, names: AwsNames,
                                                         result: BootstrapResult) -> None:
    theirs: Any = {"ID": "expire-tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 7}}
    ours = clients.s3.get_bucket_lifecycle_configuration(Bucket=names.bucket)["Rules"]
    clients.s3.put_bucket_lifecycle_configuration(Bucket=names.bucket, LifecycleConfiguration={
        "Rules": [theirs, *ours]})
    bootstrap(clients, names, SUBSCRIBERS, max_receives=4, visibility_timeout=120)
    rules = clients.s3.get_bucket_lifecycle_configuration(Bucket=names.bucket)["Rules"]
    assert sorted(rule.get("ID", "") for rule in rules) == sorted([LIFECYCLE_RULE_ID, "expire-tmp"])


def every_queue(result: BootstrapResult) -> dict[str, QueuePair]:
    return {"ingest": result.ingest_queue, "requests": result.requests_queue, **result.subscriber_queues}


def test_every_queue_has_a_dlq_a_redrive_policy_and_the_visibility_timeout(clients: AwsClients,
                                                                          result: BootstrapResult) -> None:
    assert set(every_queue(result)) == {"ingest", "requests", "notify", "alerts", "archive"}
    for pair in every_queue(result).values():
        attributes = queue_attributes(clients, pair.url)
        assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": pair.dlq_arn, "maxReceiveCount": 4}
        assert attributes["VisibilityTimeout"] == "120"
        assert queue_attributes(clients, pair.dlq_url)["MessageRetentionPeriod"] == str(14 * 86_400)


def test_subscriptions_deliver_raw_with_a_filter_on_type(clients: AwsClients, result: BootstrapResult) -> None:
    notify = subscription_attributes(clients, result.subscriptions["notify"])
    alerts = subscription_attributes(clients, result.subscriptions["alerts"])
    archive = subscription_attributes(clients, result.subscriptions["archive"])
    assert {notify["RawMessageDelivery"], alerts["RawMessageDelivery"], archive["RawMessageDelivery"]} == {"true"}
    assert json.loads(notify["FilterPolicy"]) == {"type": [COMPLETED]}
    assert json.loads(alerts["FilterPolicy"]) == {"type": sorted([COMPLETED, FAILED])}
    assert not json.loads(archive.get("FilterPolicy") or "{}")
    assert notify["Endpoint"] == result.subscriber_queues["notify"].arn


def test_each_subscriber_queue_lets_only_the_topic_send(clients: AwsClients, result: BootstrapResult) -> None:
    for pair in result.subscriber_queues.values():
        (statement,) = json.loads(queue_attributes(clients, pair.url)["Policy"])["Statement"]
        assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Allow", "sqs:SendMessage",
                                                                                    pair.arn)
        assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
        assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": result.topic_arn}}


def test_a_rerun_with_a_changed_filter_updates_the_subscription(clients: AwsClients, names: AwsNames,
                                                                result: BootstrapResult) -> None:
    again = bootstrap(clients, names, {**SUBSCRIBERS, "notify": [FAILED], "alerts": ["*"]})
    assert again.subscriptions == result.subscriptions
    assert json.loads(subscription_attributes(clients, result.subscriptions["notify"])["FilterPolicy"]) == {
        "type": [FAILED]}
    bus = build_aws_adapters(clients, names, SUBSCRIBERS)[3]
    bus.publish({"id": "evt-1", "type": "ai.seedance-relay.job.cancelled", "source": "tests"})
    assert [m.body["id"] for m in bus.subscriber("alerts").receive()] == ["evt-1"]
    assert bus.subscriber("notify").receive() == []


def test_build_aws_adapters_wires_the_resources_bootstrap_made(clients: AwsClients, names: AwsNames,
                                                               result: BootstrapResult) -> None:
    jobs, blobs, queue, bus = build_aws_adapters(clients, names, SUBSCRIBERS, visibility_timeout=60)
    job = Job(id="job_a", request={"prompt": "a cat"}, fingerprint="f" * 64, created_at=1.0, updated_at=1.0)
    assert jobs.get(jobs.create(job).id) == job
    assert blobs.put_stream("jobs/job_a/manifest.json", [b"{}"], content_type="application/json").uri == (
        f"s3://{result.bucket}/jobs/job_a/manifest.json")
    assert (queue.queue_url, queue.dlq_url, queue.visibility_timeout) == (
        result.ingest_queue.url, result.ingest_queue.dlq_url, 60)
    bus.publish({"id": "evt-1", "type": COMPLETED, "source": "tests"})
    assert [m.body["id"] for m in bus.subscriber("notify").receive()] == ["evt-1"]
    assert bus.subscriber("notify").dlq_url == result.subscriber_queues["notify"].dlq_url
    assert bus.subscriber_names() == ["alerts", "archive", "notify"]


def test_build_aws_adapters_takes_urls_and_arns_as_they_are(clients: AwsClients, names: AwsNames,
                                                            result: BootstrapResult) -> None:
    direct = AwsNames(**{**asdict(names), "ingest_queue": result.ingest_queue.url, "topic": result.topic_arn})
    _, _, queue, bus = build_aws_adapters(clients, direct, {})
    assert (queue.queue_url, queue.dlq_url, bus.topic_arn) == (
        result.ingest_queue.url, result.ingest_queue.dlq_url, result.topic_arn)


def test_build_aws_adapters_refuses_a_topic_that_does_not_exist(clients: AwsClients, names: AwsNames,
                                                                result: BootstrapResult) -> None:
    missing = AwsNames(**{**asdict(names), "topic": f"missing-{uuid.uuid4().hex[:8]}"})
    with pytest.raises(NotFound, match="bootstrap"):
        build_aws_adapters(clients, missing, SUBSCRIBERS)


def test_an_unknown_subscriber_is_not_found(clients: AwsClients, names: AwsNames, result: BootstrapResult) -> None:
    bus = build_aws_adapters(clients, names, SUBSCRIBERS)[3]
    with pytest.raises(NotFound, match="nobody"):
        bus.subscriber("nobody")
