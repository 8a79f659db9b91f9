"""Fixtures for the AWS adapters: clients on the session's moto server and fresh resource names."""

from __future__ import annotations

import uuid

import pytest

from handlers.adapters.aws import AwsClients, AwsNames, DynamoJobStore, S3BlobStore, aws_clients
from handlers.adapters.aws.blobs import MIN_PART_SIZE
from handlers.adapters.aws.bootstrap import ensure_bucket, ensure_table


@pytest.fixture
def clients(moto_server: str) -> AwsClients:
    return aws_clients(AwsNames(), endpoint_url=moto_server)


@pytest.fixture
def names() -> AwsNames:
    """Names no other test uses, so tests sharing one moto server never meet."""
    suffix = uuid.uuid4().hex[:12]
    return AwsNames(table=f"jobs-{suffix}", bucket=f"videos-{suffix}", ingest_queue=f"ingest-{suffix}",
                    requests_queue=f"requests-{suffix}", topic=f"events-{suffix}", subscriber_prefix=f"sub-{suffix}-")


@pytest.fixture
def store(clients: AwsClients, names: AwsNames) -> S3BlobStore:
    """An S3 blob store on a fresh bucket, with the smallest part size S3 allows."""
    ensure_bucket(clients.s3, names.bucket, region="us-east-1")
    return S3BlobStore(clients.s3, names.bucket, part_size=MIN_PART_SIZE)


@pytest.fixture
def jobs(clients: AwsClients, names: AwsNames) -> DynamoJobStore:
    """A DynamoDB job store on a fresh table."""
    ensure_table(clients.dynamodb, names.table)
    return DynamoJobStore(clients.dynamodb, names.table)
