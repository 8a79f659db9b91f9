"""The work queue as an SQS standard queue and its dead-letter queue.

SQS does the work itself: the visibility timeout hides a received message, the
receive count comes back as ``ApproximateReceiveCount``, and the queue's
``RedrivePolicy`` (``maxReceiveCount``) moves a message that was received too often to
the DLQ. Times are whole seconds there: a delay or timeout is rounded up, and capped at
SQS's limits (15 minutes for a delay, 12 hours for a visibility timeout, 20 seconds for
a long poll). A stale receipt handle is a no-op for ``ack`` and ``retry_later``, as in
the local queue. ``redrive`` moves dead letters back by hand (receive, send, delete),
because not every SQS look-alike has ``StartMessageMoveTask``. SQS expires messages itself
(``MessageRetentionPeriod``), so ``expire`` has nothing to do.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers.adapters.aws.errors import aws_errors, error_code, translate, translated
from handlers.adapters.aws.names import AwsNames
from handlers.base.errors import NotFound, QueueError
from handlers.ports import Message, Removed

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        MessageAttributeValueOutputTypeDef,
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

__all__ = ["MAX_DELAY", "MAX_VISIBILITY", "MAX_WAIT", "SqsWorkQueue", "queue_url"]

MAX_DELAY, MAX_VISIBILITY, MAX_WAIT, MAX_BATCH = 900, 43_200, 20, 10
PEEK_VISIBILITY = 30
_STALE_RECEIPT = frozenset({"ReceiptHandleIsInvalid", "AWS.SimpleQueueService.MessageNotInflight",
                            "MessageNotInflight", "InvalidReceiptHandle"})


def _seconds(value: float, ceiling: int) -> int:
    return min(ceiling, max(0, math.ceil(value)))


def _body(text: str) -> Mapping[str, Any]:
    """The JSON object a message carries; anything else arrives as ``{"raw": text}``."""
    try:
        body = json.loads(text)
    except ValueError:
        return {"raw": text}
    return body if isinstance(body, dict) else {"raw": text}


def queue_url(client: SQSClient, name: str) -> str:
    """The URL of the queue called ``name``; ``NotFound`` if there is none."""
    with aws_errors(QueueError, f"find queue {name!r}"):
        return client.get_queue_url(QueueName=name)["QueueUrl"]


def _redrive_target(client: SQSClient, url: str) -> str | None:
    """The DLQ URL named by the queue's ``RedrivePolicy``, if it has one."""
    with aws_errors(QueueError, f"read the redrive policy of {url}"):
        attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    policy = attributes.get("Attributes", {}).get("RedrivePolicy")
    if not policy:
        return None
    arn = str(json.loads(policy)["deadLetterTargetArn"])
    account, name = arn.split(":")[4], arn.split(":")[5]
    with aws_errors(QueueError, f"find dead-letter queue {arn}"):
        return client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]


class SqsWorkQueue:
    """:class:`~handlers.ports.WorkQueue` on the SQS queue at ``queue_url`` (DLQ at ``dlq_url``).

    ``wait_seconds`` is the shortest long poll every ``receive`` makes (0: return at once
    when empty); ``visibility_timeout`` overrides the queue's own on each receive.
    """

    def __init__(self, client: SQSClient, queue_url: str, *, dlq_url: str | None = None,
                 wait_seconds: float = 0.0, visibility_timeout: float | None = None) -> None:
        self._client = client
        self.queue_url = queue_url
        self.dlq_url = dlq_url
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout

    @classmethod
    def from_name(cls, client: SQSClient, name: str, *, wait_seconds: float = 0.0,
                  visibility_timeout: float | None = None) -> SqsWorkQueue:
        """The queue ``name`` (its DLQ: ``AwsNames.dlq(name)``), or a queue URL (its DLQ: its redrive policy)."""
        if name.startswith("http"):
            url, dlq_url = name, _redrive_target(client, name)
        else:
            url = queue_url(client, name)
            try:
                dlq_url = queue_url(client, AwsNames.dlq(name))
            except NotFound:
                dlq_url = None
        return cls(client, url, dlq_url=dlq_url, wait_seconds=wait_seconds,
                   visibility_timeout=visibility_timeout)

    def send(self, body: Mapping[str, Any], *, delay: float = 0.0) -> str:
        with aws_errors(QueueError, f"send to {self.queue_url}"):
            return self._client.send_message(
                QueueUrl=self.queue_url, MessageBody=json.dumps(body, separators=(",", ":")),
                DelaySeconds=_seconds(delay, MAX_DELAY))["MessageId"]

    def send_batch(self, bodies: Sequence[Mapping[str, Any]]) -> list[str]:
        """``SendMessageBatch`` in groups of 10; any entry SQS refuses fails the call (``QueueError``)."""
        ids: list[str] = []
        for start in range(0, len(bodies), MAX_BATCH):
            group = bodies[start:start + MAX_BATCH]
            with aws_errors(QueueError, f"send to {self.queue_url}"):
                answer = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=[
                    {"Id": str(n), "MessageBody": json.dumps(body, separators=(",", ":"))}
                    for n, body in enumerate(group)])
            if failed := answer.get("Failed"):
                code = str(failed[0].get("Code") or "Unknown")
                raise translated(QueueError, f"send to {self.queue_url} failed for {len(failed)} message(s): {code}",
                                 code)
            by_entry = {entry["Id"]: entry["MessageId"] for entry in answer.get("Successful", [])}
            ids += [by_entry[str(n)] for n in range(len(group))]
        return ids

    def receive(self, *, max_messages: int = 10, wait: float = 0.0) -> list[Message]:
        """Up to ``max_messages`` (at most 10) messages; long-polls up to ``wait`` seconds (at most 20)."""
        options: dict[str, Any] = {}
        if self.visibility_timeout is not None:
            options["VisibilityTimeout"] = _seconds(self.visibility_timeout, MAX_VISIBILITY)
        raw = self._receive(self.queue_url, max_messages, min(MAX_WAIT, int(max(wait, self.wait_seconds))),
                            **options)
        return [_message(item) for item in raw]

    def ack(self, message: Message) -> None:
        """Delete ``message``; a receipt SQS no longer knows is a no-op."""
        self._with_receipt("ack", self._client.delete_message, QueueUrl=self.queue_url,
                           ReceiptHandle=message.receipt)

    def retry_later(self, message: Message, delay: float) -> None:
        """Hide ``message`` for ``delay`` more seconds (whole, at most 12 hours); a stale receipt is a no-op."""
        self._with_receipt("retry", self._client.change_message_visibility, QueueUrl=self.queue_url,
                           ReceiptHandle=message.receipt, VisibilityTimeout=_seconds(delay, MAX_VISIBILITY))

    def dead_letters(self, limit: int = 100) -> list[Message]:
        """A peek at the DLQ: receive, then make visible again at once (receipt ``""``).

        ``receive_count`` is SQS's approximate count minus this peek's own receive.
        """
        if self.dlq_url is None:
            return []
        seen: dict[str, MessageTypeDef] = {}
        while len(seen) < limit:
            batch = self._receive(self.dlq_url, min(MAX_BATCH, limit - len(seen)), 0,
                                  VisibilityTimeout=PEEK_VISIBILITY)
            fresh = [item for item in batch if item["MessageId"] not in seen]
            seen.update((item["MessageId"], item) for item in fresh)
            if not fresh:
                break
        self._make_visible(self.dlq_url, [item["ReceiptHandle"] for item in seen.values()])
        return [_message(item, receipt="", receives_by_peek=1) for item in seen.values()]

    def redrive(self) -> int:
        """Move every dead letter back to the queue (as a new message); return how many.

        A message SQS refused to send stays in the DLQ (visible again after 30 s) and the
        redrive stops with ``QueueError``; those sent before are out of the DLQ.
        """
        if self.dlq_url is None:
            return 0
        moved = 0
        while batch := self._receive(self.dlq_url, MAX_BATCH, 0, VisibilityTimeout=PEEK_VISIBILITY):
            sent, failed = self._send_batch(batch)
            if sent:
                self._delete_batch(self.dlq_url, sent)
            moved += len(sent)
            if failed:
                raise translated(QueueError, f"redrive to {self.queue_url} failed for {len(failed)} message(s): "
                                 f"{failed[0]}", failed[0])
        return moved

    def depth(self) -> dict[str, int]:
        """``visible``; ``in_flight``: received, retried later or delayed; ``dead``: everything in the DLQ."""
        visible, hidden, delayed = self._counts(self.queue_url)
        dead = sum(self._counts(self.dlq_url)) if self.dlq_url else 0
        return {"visible": visible, "in_flight": hidden + delayed, "dead": dead}

    def expire(self, before: float, *, limit: int = 1000, dry_run: bool = False) -> Removed:
        """Nothing: SQS drops every message its queue's ``MessageRetentionPeriod`` after it was first sent."""
        return Removed()

    def _receive(self, url: str, count: int, wait: int, **options: Any) -> list[MessageTypeDef]:
        with aws_errors(QueueError, f"receive from {url}"):
            return self._client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=max(1, min(MAX_BATCH, count)), WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["ApproximateReceiveCount"], MessageAttributeNames=["All"],
                **options).get("Messages", [])

    def _with_receipt(self, what: str, call: Callable[..., Any], **arguments: Any) -> None:
        try:
            call(**arguments)
        except ClientError as exc:
            if error_code(exc) not in _STALE_RECEIPT:
                raise translate(exc, QueueError, f"{what} on {self.queue_url}") from exc
        except BotoCoreError as exc:
            raise translate(exc, QueueError, f"{what} on {self.queue_url}") from exc

    def _make_visible(self, url: str, receipts: list[str]) -> None:
        for start in range(0, len(receipts), MAX_BATCH):
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(n), "ReceiptHandle": receipt, "VisibilityTimeout": 0}
                for n, receipt in enumerate(receipts[start:start + MAX_BATCH])]
            with aws_errors(QueueError, f"release peeked messages of {url}"):
                self._client.change_message_visibility_batch(QueueUrl=url, Entries=entries)

    def _send_batch(self, batch: list[MessageTypeDef]) -> tuple[list[MessageTypeDef], list[str]]:
        """Send ``batch`` to the queue; the messages sent, and the error codes of those that were not."""
        entries = [_resend_entry(str(n), item) for n, item in enumerate(batch)]
        with aws_errors(QueueError, f"send to {self.queue_url}"):
            failed = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries).get("Failed", [])
        unsent = {entry["Id"] for entry in failed}
        sent = [item for n, item in enumerate(batch) if str(n) not in unsent]
        return sent, [str(entry.get("Code") or "Unknown") for entry in failed]

    def _delete_batch(self, url: str, batch: list[MessageTypeDef]) -> None:
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(n), "ReceiptHandle": item["ReceiptHandle"]} for n, item in enumerate(batch)]
        with aws_errors(QueueError, f"remove redriven messages from {url}"):
            self._client.delete_message_batch(QueueUrl=url, Entries=entries)

    def _counts(self, url: str) -> tuple[int, int, int]:
        names: list[QueueAttributeNameType] = [
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"]
        with aws_errors(QueueError, f"count messages of {url}"):
            attributes = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        values = attributes.get("Attributes", {})
        visible, hidden, delayed = (int(values.get(name) or 0) for name in names)
        return visible, hidden, delayed


def _resend_entry(entry_id: str, item: MessageTypeDef) -> SendMessageBatchRequestEntryTypeDef:
    """A ``SendMessageBatch`` entry carrying ``item``'s body and message attributes."""
    entry: SendMessageBatchRequestEntryTypeDef = {"Id": entry_id, "MessageBody": item["Body"]}
    attributes = item.get("MessageAttributes")
    if attributes:
        entry["MessageAttributes"] = {name: _attribute(value) for name, value in attributes.items()}
    return entry


def _attribute(value: MessageAttributeValueOutputTypeDef) -> MessageAttributeValueTypeDef:
    copied: MessageAttributeValueTypeDef = {"DataType": value["DataType"]}
    if "StringValue" in value:
        copied["StringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        copied["BinaryValue"] = value["BinaryValue"]
    return copied


def _message(item: MessageTypeDef, *, receipt: str | None = None, receives_by_peek: int = 0) -> Message:
    count = int(item.get("Attributes", {}).get("ApproximateReceiveCount", "1")) - receives_by_peek
    return Message(id=item["MessageId"], body=_body(item["Body"]),
                   receipt=item["ReceiptHandle"] if receipt is None else receipt, receive_count=max(count, 0))
