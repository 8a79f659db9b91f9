"""SQS batches as a Lambda event source mapping hands them over, with partial batch failure reporting
(``ReportBatchItemFailures``). Shared by the Lambda entries and the consumer helper."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from handlers.base.logs import get_logger
from handlers.ports import Message

__all__ = ["Record", "batch_response", "records"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    message_id: str
    receipt: str
    receive_count: int
    body: str
    attributes: Mapping[str, Any]

    def json(self) -> Any:
        return json.loads(self.body)

    def as_message(self, body: Mapping[str, Any]) -> Message:
        return Message(id=self.message_id, body=body, receipt=self.receipt, receive_count=self.receive_count)


def records(event: Mapping[str, Any]) -> list[Record]:
    return [Record(message_id=r["messageId"], receipt=r.get("receiptHandle", ""),
                   receive_count=int(r.get("attributes", {}).get("ApproximateReceiveCount", "1")),
                   body=r.get("body", ""), attributes=r.get("messageAttributes") or {})
            for r in event.get("Records", [])]


def batch_response(batch: Iterable[Record], handle: Callable[[Record], bool]) -> dict[str, Any]:
    """Run ``handle`` on each record; a ``False`` or an exception reports that record as failed."""
    failures = []
    for record in batch:
        try:
            ok = handle(record)
        except Exception:
            log.exception("sqs.record_failed", message_id=record.message_id)
            ok = False
        if not ok:
            failures.append({"itemIdentifier": record.message_id})
    return {"batchItemFailures": failures}
