"""The four boto3 clients the AWS adapters share, built in one place.

``aws_clients(names)`` honours ``AWS_ENDPOINT_URL`` (and the per-service
``AWS_ENDPOINT_URL_S3`` …) the way boto3 itself does; an explicit ``endpoint_url`` wins.
With any endpoint set (moto, LocalStack, MinIO, R2) S3 uses path-style addressing.
boto3 is imported inside the function, so importing this module costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from handlers.adapters.aws.names import AwsNames

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

__all__ = ["CONNECT_TIMEOUT", "MAX_POOL_CONNECTIONS", "READ_TIMEOUT", "AwsClients", "aws_client", "aws_clients"]

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
MAX_POOL_CONNECTIONS = 32
MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class AwsClients:
    dynamodb: DynamoDBClient
    s3: S3Client
    sqs: SQSClient
    sns: SNSClient


def aws_clients(names: AwsNames, *, endpoint_url: str | None = None,
                env: Mapping[str, str] | None = None) -> AwsClients:
    """Clients for ``names.region`` with standard retries, timeouts and a 32-connection pool.

    ``env`` (default ``os.environ``) is read only to tell whether S3 goes to a custom
    endpoint; boto3 reads the endpoint variables itself.
    """
    import boto3
    from botocore.config import Config

    env = os.environ if env is None else env
    custom_s3 = bool(endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"))
    base = _config(names.region)
    s3_config = base.merge(Config(signature_version="s3v4",
                                  s3={"addressing_style": "path" if custom_s3 else "auto"}))
    options: dict[str, Any] = {"endpoint_url": endpoint_url} if endpoint_url else {}
    session = boto3.session.Session(region_name=names.region)
    return AwsClients(
        dynamodb=session.client("dynamodb", config=base, **options),
        s3=session.client("s3", config=s3_config, **options),
        sqs=session.client("sqs", config=base, **options),
        sns=session.client("sns", config=base, **options),
    )


def aws_client(service: Literal["ssm", "sqs"], region: str, *, endpoint_url: str | None = None) -> Any:
    """One more client (``ssm``, or ``sqs`` alone) with the retries, timeouts and pool of :func:`aws_clients`."""
    import boto3

    options: dict[str, Any] = {"endpoint_url": endpoint_url} if endpoint_url else {}
    return boto3.session.Session(region_name=region).client(service, config=_config(region), **options)


def _config(region: str) -> Any:
    from botocore.config import Config

    return Config(region_name=region, retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
                  connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT, max_pool_connections=MAX_POOL_CONNECTIONS)
