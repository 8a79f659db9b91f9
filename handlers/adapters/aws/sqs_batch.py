"""SQS batches as a Lambda event source mapping hands them over, with partial batch failure reporting
(``ReportBatchItemFailures``). Shared by the Lambda entries and the consumer helper.

A record is settled as a local worker settles a message (:func:`handlers.ports.settle`), through a
:class:`BatchSettler`: the event source mapping deletes the records reported a success, so an ack
is that report; a retry sets the message's visibility on the queue (``0``: visible at once) and
reports the record failed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from handlers.base.errors import QueueError
from handlers.base.logs import get_logger
from handlers.ports import Message, WorkQueue

__all__ = ["BatchSettler", "Record", "batch_response", "records"]

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


class BatchSettler:
    """:class:`~handlers.ports.Settles` for records of a Lambda batch from a queue.

    ``ack`` calls nothing: the handler reports the record a success and the event source
    mapping deletes it. ``retry_later`` changes the message's visibility on the queue (the
    handler then reports the record failed, so the mapping leaves it there). ``queue`` is the
    queue, or ``make`` makes it on the first retry; without one (or when the change
    fails, which is logged) the queue's visibility timeout spaces the retries instead.
    """

    def __init__(self, queue: WorkQueue | None = None, *, make: Callable[[], WorkQueue] | None = None) -> None:
        self._queue, self._make = queue, make

    def ack(self, message: Message) -> None:
        """Nothing to do: the record's success is its ack."""

    def retry_later(self, message: Message, delay: float) -> None:
        try:
            if self._queue is None and self._make is not None:
                self._queue = self._make()
            if self._queue is not None:
                self._queue.retry_later(message, delay)
        except QueueError as exc:
            log.warning("sqs.backoff_failed", message_id=message.id, code=exc.code, error=exc.message)


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
