"""``BatchGetItem`` of many ids from one table: 100 keys a call, consistent reads, and the keys DynamoDB
leaves unprocessed (throttling) asked again with a short backoff."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from handlers.adapters.aws.errors import aws_errors
from handlers.base.errors import StorageError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["BATCH_GET_LIMIT", "UNPROCESSED_ATTEMPTS", "batch_get"]

BATCH_GET_LIMIT = 100
UNPROCESSED_ATTEMPTS = 6


def batch_get(client: DynamoDBClient, table: str, ids: Sequence[str], *, what: str,
              projection: Mapping[str, str] | None = None,
              sleep: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """The items of ``ids`` that exist (repeats asked once). ``projection`` maps ``#placeholders`` to the
    attribute names to read (default: whole items); ``what`` names the read in errors. ``StorageError``
    (``throttled``) when keys are still unprocessed after :data:`UNPROCESSED_ATTEMPTS` calls."""
    wanted = list(dict.fromkeys(ids))  # BatchGetItem refuses a repeated key
    shape: dict[str, Any] = {"ConsistentRead": True}
    if projection:
        shape.update(ProjectionExpression=", ".join(projection), ExpressionAttributeNames=dict(projection))
    items: list[dict[str, Any]] = []
    for start in range(0, len(wanted), BATCH_GET_LIMIT):
        request: dict[str, Any] = {table: {
            "Keys": [{"id": {"S": item_id}} for item_id in wanted[start:start + BATCH_GET_LIMIT]], **shape}}
        for attempt in range(UNPROCESSED_ATTEMPTS):
            if attempt:
                sleep(min(0.05 * 2 ** attempt, 1.0))
            with aws_errors(StorageError, f"{what} ({len(request[table]['Keys'])} items)"):
                answer = client.batch_get_item(RequestItems=request)
            items += answer.get("Responses", {}).get(table, [])
            request = dict(answer.get("UnprocessedKeys") or {})
            if not request:
                break
        else:
            raise StorageError(f"{what}: DynamoDB left {len(request[table]['Keys'])} items unread", code="throttled")
    return items
