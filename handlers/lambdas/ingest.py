"""Ingest from SQS: each message names a job to read from EvoLink and copy into S3."""

from __future__ import annotations

from typing import Any

from handlers.adapters.aws.sqs_batch import Record, batch_response, records
from handlers.lambdas._relay import flush_metrics, relay
from handlers.usecases.work import handle_ingest_message

__all__ = ["handler"]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    worker = getattr(context, "aws_request_id", "lambda")
    current = relay()

    def handle(record: Record) -> bool:
        body = record.json()
        disposition = handle_ingest_message(current, body, receive_count=record.receive_count, worker=worker)
        if not disposition.done and disposition.delay:
            current.ingest_queue.retry_later(record.as_message(body), disposition.delay)
        return disposition.done

    try:
        return batch_response(records(event), handle)
    finally:
        flush_metrics()
