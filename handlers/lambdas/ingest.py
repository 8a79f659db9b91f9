"""Ingest from SQS: each message names a job to read from EvoLink and copy into S3."""

from __future__ import annotations

from typing import Any

from handlers.adapters.aws.sqs_batch import BatchSettler, Record, batch_response, records
from handlers.lambdas._relay import flush_metrics, relay
from handlers.ports import settle
from handlers.usecases.work import handle_ingest_message

__all__ = ["handler"]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    worker = getattr(context, "aws_request_id", "lambda")
    current = relay()

    settler = BatchSettler(current.ingest_queue)

    def handle(record: Record) -> bool:
        message = record.as_message(record.json())
        disposition = handle_ingest_message(current, message.body, receive_count=record.receive_count, worker=worker)
        return settle(settler, message, done=disposition.done, delay=disposition.delay)

    try:
        return batch_response(records(event), handle)
    finally:
        flush_metrics()
