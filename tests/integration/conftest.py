"""Fixtures for the AWS adapters: clients on the session's moto server and fresh resource names."""

from __future__ import annotations

import uuid

import pytest

from handlers.adapters.aws import AwsClients, AwsNames, aws_clients


@pytest.fixture
def clients(moto_server: str) -> AwsClients:
    return aws_clients(AwsNames(), endpoint_url=moto_server)


@pytest.fixture
def names() -> AwsNames:
    """Names no other test uses, so tests sharing one moto server never meet."""
    suffix = uuid.uuid4().hex[:12]
    return AwsNames(table=f"jobs-{suffix}", bucket=f"videos-{suffix}", ingest_queue=f"ingest-{suffix}",
                    requests_queue=f"requests-{suffix}", topic=f"events-{suffix}", subscriber_prefix=f"sub-{suffix}-")
