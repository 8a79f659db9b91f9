"""Webhook deliveries from SQS: one function per webhook, triggered by that webhook's subscriber queue.

``RELAY_WEBHOOK_TARGET`` names the webhook (an entry of ``RELAY_WEBHOOKS`` and of
``RELAY_SUBSCRIBERS``). Its secret comes from ``RELAY_WEBHOOK_SECRET_<NAME>`` or, in
Lambda, from the SSM SecureString that ``RELAY_WEBHOOK_SECRET_<NAME>_PARAM`` names (read
once per container, with decryption). Record bodies may be the raw event JSON or an SNS
envelope. A failed delivery is reported in ``batchItemFailures``; on the ``aws`` backend the
subscriber queue (``RELAY_SUBSCRIBER_QUEUE_PREFIX`` and the name) also gets its visibility set
to the backoff delay, otherwise the queue's visibility timeout spaces the retries. After the
queue's ``maxReceiveCount`` SQS moves the message to the subscriber's DLQ.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from functools import cache
from typing import Any

from handlers.adapters.aws.sqs_batch import BatchSettler, Record, batch_response, records
from handlers.app.settings import Settings
from handlers.base.errors import ConfigurationError, InvalidRequest
from handlers.base.logs import configure, get_logger, register_secret
from handlers.consumer import unwrap
from handlers.ports import WorkQueue
from handlers.webhooks.config import PARAM_SUFFIX, secret_parameters, secret_variable
from handlers.webhooks.delivery import WebhookDeliverer, build_deliverer, deliver_message

__all__ = ["TARGET_VARIABLE", "WebhookHandler", "build_handler", "handler", "handler_for",
           "with_webhook_secrets"]

log = get_logger(__name__)
TARGET_VARIABLE = "RELAY_WEBHOOK_TARGET"


class WebhookHandler:
    """The Lambda handler for webhook ``target``'s subscriber queue.

    ``queue`` makes the subscriber queue (on first use) so that a failed message waits the
    backoff delay; without it the queue's visibility timeout decides.
    """

    def __init__(self, deliverer: WebhookDeliverer, target: str, *,
                 queue: Callable[[], WorkQueue] | None = None) -> None:
        deliverer.target(target)
        self._deliverer = deliverer
        self._target = target
        self._settler = BatchSettler(make=queue)

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        return batch_response(records(event), self._one)

    def _one(self, record: Record) -> bool:
        try:
            body = unwrap(record.body)
        except InvalidRequest as exc:
            log.error("webhook.bad_record", target=self._target, message_id=record.message_id, error=exc.message)
            return False
        return deliver_message(self._deliverer, self._target, self._settler, record.as_message(body)).settled


def with_webhook_secrets(settings: Settings, names: Collection[str], ssm: Any | None = None) -> Settings:
    """``settings`` plus each webhook secret of ``names`` that only a ``*_PARAM`` (SSM parameter) gives."""
    wanted = secret_parameters(settings, names)
    if not wanted:
        return settings
    if ssm is None:
        from handlers.adapters.aws.clients import aws_client

        ssm = aws_client("ssm", settings.aws_region, endpoint_url=settings.aws_endpoint_url)
    resolved = dict(settings.webhook_secrets)
    for name, parameter in wanted.items():
        resolved[name] = _read_parameter(ssm, secret_variable(name), parameter)
        register_secret(resolved[name], *resolved[name].split())
    return settings.with_(webhook_secrets=resolved)


def _read_parameter(ssm: Any, variable: str, parameter: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return str(ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"])
    except (ClientError, BotoCoreError) as exc:
        raise ConfigurationError(f"{variable}{PARAM_SUFFIX}: cannot read SSM parameter {parameter!r}: {exc}") from exc


def build_handler(env: Mapping[str, str], *, ssm: Any | None = None,
                  queue: Callable[[], WorkQueue] | None = None) -> WebhookHandler:
    """The handler for the webhook ``RELAY_WEBHOOK_TARGET`` names, from the environment ``env``.

    ``queue`` defaults to the SQS subscriber queue on the ``aws`` backend (``RELAY_BACKEND``).
    """
    return handler_for(Settings.from_env(env), ssm=ssm, queue=queue)


def handler_for(settings: Settings, *, ssm: Any | None = None,
                queue: Callable[[], WorkQueue] | None = None) -> WebhookHandler:
    """:func:`build_handler` from settings already read."""
    target = (settings.webhook_target or "").strip()
    if not target:
        raise ConfigurationError(f"{TARGET_VARIABLE} is not set: name the webhook this function delivers to")
    settings = with_webhook_secrets(settings, [target], ssm)
    deliverer = build_deliverer(settings, names=[target])
    if queue is None and settings.backend == "aws":
        queue = _sqs_queue_factory(settings, target)
    return WebhookHandler(deliverer, target, queue=queue)


def _sqs_queue_factory(settings: Settings, target: str) -> Callable[[], WorkQueue]:
    def make() -> WorkQueue:
        from handlers.adapters.aws.clients import aws_client
        from handlers.adapters.aws.queue import SqsWorkQueue
        from handlers.app.wiring import aws_names

        where = aws_names(settings).subscriber_queue(target)
        sqs = aws_client("sqs", settings.aws_region, endpoint_url=settings.aws_endpoint_url)
        if where.startswith(("https://", "http://")):
            return SqsWorkQueue(sqs, where)
        return SqsWorkQueue.from_name(sqs, where)

    return make


@cache
def _handler() -> WebhookHandler:
    settings = Settings.from_env(os.environ)
    configure(settings.log_level, "json")
    return handler_for(settings)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _handler()(event, context)
