"""Outgoing webhooks: a subscriber kind that POSTs each event, signed per Standard Webhooks.

See ``docs/webhooks.md``. ``signing`` (sign and verify), ``config`` (targets from the
environment), ``delivery`` (the deliverer, the retry schedule and the queue loop).
"""

from __future__ import annotations

from handlers.webhooks.config import WebhookTarget, load_targets, secret_variable
from handlers.webhooks.delivery import (
    RETRY_SCHEDULE,
    DeliveryResult,
    Outcome,
    WebhookDeliverer,
    build_deliverer,
    deliver_from_queue,
    retry_delay,
    run_webhook_loop,
)
from handlers.webhooks.signing import InvalidWebhook, WebhookSecret, sign, verify

__all__ = [
    "RETRY_SCHEDULE",
    "DeliveryResult",
    "InvalidWebhook",
    "Outcome",
    "WebhookDeliverer",
    "WebhookSecret",
    "WebhookTarget",
    "build_deliverer",
    "deliver_from_queue",
    "load_targets",
    "retry_delay",
    "run_webhook_loop",
    "secret_variable",
    "sign",
    "verify",
]
