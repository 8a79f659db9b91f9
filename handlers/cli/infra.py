"""``seedance-relay infra bootstrap``: create the AWS resources on an AWS-compatible endpoint."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from handlers.app.settings import Settings
from handlers.app.wiring import aws_names, subscriber_filters
from handlers.base.errors import RelayError

__all__ = ["infra"]


@click.group()
def infra() -> None:
    """Manage the AWS resources the relay runs on."""


@infra.command(short_help="Create the AWS resources (idempotent).")
@click.option("--endpoint-url", default=None,
              help="An AWS-compatible endpoint (moto, LocalStack, MinIO for S3) [env AWS_ENDPOINT_URL].")
def bootstrap(endpoint_url: str | None) -> None:
    """Create (or confirm) the table, bucket, queues, DLQs, topic and subscriptions; idempotent.

    Names come from RELAY_TABLE, RELAY_BUCKET, RELAY_INGEST_QUEUE, RELAY_REQUESTS_QUEUE,
    RELAY_TOPIC and RELAY_SUBSCRIBER_QUEUE_PREFIX; subscribers from RELAY_SUBSCRIBERS.
    For a real AWS account, deploy serverless.yml instead.
    """
    from handlers.adapters.aws import aws_clients
    from handlers.adapters.aws.bootstrap import bootstrap as create

    settings = Settings.from_env(aws_endpoint_url=endpoint_url)
    names = aws_names(settings)
    try:
        result = create(aws_clients(names, endpoint_url=settings.aws_endpoint_url), names,
                        subscriber_filters(settings), max_receives=settings.queue_max_receives,
                        visibility_timeout=int(settings.queue_visibility_timeout))
    except RelayError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    click.echo(json.dumps(asdict(result), indent=2, default=str))
