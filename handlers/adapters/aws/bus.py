"""The event bus as an SNS topic fanning out to SQS subscriber queues.

``publish`` sends the CloudEvent as the SNS message with two message attributes,
``type`` and ``source``; each subscriber queue is subscribed with a filter policy on
``type`` (none for ``"*"``) and raw message delivery, so its messages are the event JSON
itself (see :mod:`handlers.adapters.aws.bootstrap`). ``subscriber(name)`` is the
:class:`~handlers.adapters.aws.queue.SqsWorkQueue` behind a subscriber.

SNS delivers at least once and keeps no memory of what it sent, so "once per CloudEvent
``id``" comes from a :class:`DynamoEventLedger`, the DynamoDB hooks of the publish-once
algorithm every bus shares (:class:`~handlers.adapters.ledger.EventLedger`): a conditional
``PutItem`` claims the id (``publishing``, with a lease), the claimant publishes and marks
it ``published``; a racing publisher of the same id waits for that and returns, and takes
the claim over if the first one failed (its claim is released) or vanished (its lease ran out). Ledger
items live in the job table (key ``event#<id>``, removed by TTL after ``ttl_days``). The ledger is
also the event log (:mod:`handlers.adapters.aws.eventlog`): the update that marks an id published
writes the event and the attributes of ``event-log-index`` onto its item, so logging costs no call.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers.adapters.aws.errors import CONDITION_FAILED, aws_errors, error_code, translate
from handlers.adapters.aws.eventlog import LEDGER_PREFIX, log_attributes
from handlers.adapters.aws.queue import SqsWorkQueue
from handlers.adapters.ledger import Claimed, EventLedger, Held, event_identity
from handlers.base.errors import NotFound, QueueError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef
    from mypy_boto3_sqs import SQSClient

__all__ = ["LEDGER_PREFIX", "DynamoEventLedger", "SnsEventBus"]

PUBLISHING, PUBLISHED = "publishing", "published"
DAY = 86_400.0


class DynamoEventLedger(EventLedger[Mapping[str, Any]]):
    """Which CloudEvent ids were published, in a DynamoDB table keyed by ``id`` (the job table will do).

    The hooks of :class:`~handlers.adapters.ledger.EventLedger`: a claim is a conditional
    ``PutItem`` (``publishing`` with a lease, allowed over nothing or over a lease that ran
    out), recording sets ``published`` and logs the event (its item expires ``ttl_days`` after
    that: ``RELAY_EVENT_RETENTION``), releasing deletes a claim still ``publishing``.
    """

    def __init__(self, client: DynamoDBClient, table: str, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, lease_seconds: float = 30.0,
                 poll_interval: float = 0.05, ttl_days: float = 30) -> None:
        super().__init__(clock=clock, sleep=sleep, lease_seconds=lease_seconds, poll_interval=poll_interval)
        self._client = client
        self.table = table
        self.ttl_days = ttl_days

    def _claim(self, event_id: str, event: Mapping[str, Any]) -> Claimed[Mapping[str, Any]] | Held:
        now = self._clock()
        item: dict[str, Any] = {
            "id": {"S": LEDGER_PREFIX + event_id}, "state": {"S": PUBLISHING},
            "lease_until": {"N": repr(now + self.lease_seconds)},
            "expires_at": {"N": str(int(now + self.ttl_days * DAY))}}
        try:
            self._client.put_item(
                TableName=self.table, Item=item, ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ConditionExpression="attribute_not_exists(id) OR (#state = :publishing AND lease_until < :now)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":publishing": {"S": PUBLISHING}, ":now": {"N": repr(now)}})
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise translate(exc, QueueError, f"claim event {event_id!r}") from exc
            stored: Any = exc.response.get("Item") or {}
            return Held.PUBLISHED if stored.get("state", {}).get("S") == PUBLISHED else Held.PUBLISHING
        except BotoCoreError as exc:
            raise translate(exc, QueueError, f"claim event {event_id!r}") from exc
        return Claimed(event_id, event)

    def _record(self, claim: Claimed[Mapping[str, Any]]) -> None:
        logged = log_attributes(claim.handle, claim.event_id, published_at=self._clock(), retention_days=self.ttl_days)
        names = {f"#{name}": name for name in logged}
        values: dict[str, Any] = {f":{name}": value for name, value in logged.items()}
        with aws_errors(QueueError, f"record event {claim.event_id!r} published"):
            self._client.update_item(
                TableName=self.table, Key={"id": {"S": LEDGER_PREFIX + claim.event_id}},
                UpdateExpression="SET #state = :published, " + ", ".join(f"#{n} = :{n}" for n in logged)
                                 + " REMOVE lease_until",
                ExpressionAttributeNames={"#state": "state", **names},
                ExpressionAttributeValues={":published": {"S": PUBLISHED}, **values})

    def _release(self, claim: Claimed[Mapping[str, Any]]) -> None:
        """Best effort: let the next publisher in at once (the lease frees the claim anyway)."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self._client.delete_item(
                TableName=self.table, Key={"id": {"S": LEDGER_PREFIX + claim.event_id}},
                ConditionExpression="#state = :publishing", ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":publishing": {"S": PUBLISHING}})


class SnsEventBus:
    """:class:`~handlers.ports.EventBus` on the SNS topic ``topic_arn``.

    ``subscriber_queue_urls`` maps each subscriber's name to its queue URL; ``ledger``
    makes ``publish`` once per CloudEvent id (without one, SNS's at-least-once is all
    there is). ``wait_seconds`` and ``visibility_timeout`` go to the subscriber queues.
    """

    def __init__(self, sns: SNSClient, sqs: SQSClient, topic_arn: str, subscriber_queue_urls: Mapping[str, str],
                 *, ledger: DynamoEventLedger | None = None, wait_seconds: float = 0.0,
                 visibility_timeout: float | None = None) -> None:
        self._sns = sns
        self._sqs = sqs
        self.topic_arn = topic_arn
        self._urls = subscriber_queue_urls
        self._ledger = ledger
        self._queue_options: dict[str, Any] = {"wait_seconds": wait_seconds,
                                               "visibility_timeout": visibility_timeout}
        self._queues: dict[str, SqsWorkQueue] = {}

    def publish(self, event: Mapping[str, Any]) -> None:
        """Publish ``event`` to the topic, once per CloudEvent ``id`` when there is a ledger."""
        _, event_type = event_identity(event)
        if self._ledger is None:
            self._publish(event, event_type)
        else:
            self._ledger.once(event, lambda _: self._publish(event, event_type))

    def subscriber(self, name: str) -> SqsWorkQueue:
        if name not in self._queues:
            try:
                url = self._urls[name]
            except KeyError:
                raise NotFound(f"no subscriber {name!r}") from None
            self._queues[name] = SqsWorkQueue.from_name(self._sqs, url, **self._queue_options)
        return self._queues[name]

    def subscriber_names(self) -> list[str]:
        return sorted(self._urls)

    def _publish(self, event: Mapping[str, Any], event_type: str) -> None:
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            "type": {"DataType": "String", "StringValue": event_type}}
        for name in ("source", "tenant"):
            value = event.get(name)
            if isinstance(value, str) and value:
                attributes[name] = {"DataType": "String", "StringValue": value}
        with aws_errors(QueueError, f"publish to {self.topic_arn}"):
            self._sns.publish(TopicArn=self.topic_arn, Message=json.dumps(event, separators=(",", ":")),
                              MessageAttributes=attributes)
