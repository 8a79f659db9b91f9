"""The API keys made at run time, in the job table (DynamoDB), beside the jobs.

Two kinds of item, neither with a ``record`` nor any of the job table's index attributes
(``due_shard``, ``kind``, ``status``, ``created_key``, ``check_at``), so no index, page or job
lookup ever sees them:

* ``apikey#<digest>``: one key, found by the sha256 hex digest of the key (the lookup every
  request makes is one consistent ``GetItem``): ``key_id``, ``tenant``, ``role``, ``created_at``
  and, once revoked, ``revoked_at``;
* ``apikeys``: the registry, one map attribute ``k#<key_id>`` per key with the same fields and
  the digest, so that listing the keys is one ``GetItem``, never a ``Scan`` of the jobs, and a
  key id finds its digest. DynamoDB's 400 KB item limit holds about 2,000 keys.

Both items of a key are written together, in one ``TransactWriteItems``: adding puts the key's
item on ``attribute_not_exists(id)`` and sets its registry entry on ``attribute_not_exists``,
so a repeated id or digest writes nothing (``Conflict``); revoking sets ``revoked_at`` on both
while it is unset, so two revocations keep the first time. Every key's entry is in one item, so
two transactions may meet there (``TransactionConflict``): the later is tried again after a
jittered backoff. The key itself is never given to the store, so it is never written anywhere.

IAM: ``TransactWriteItems`` needs no action of its own; its parts need ``dynamodb:PutItem`` and
``dynamodb:UpdateItem``, and the reads ``dynamodb:GetItem``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from handlers.adapters.aws.errors import aws_errors, error_code, translate
from handlers.base.errors import Conflict, NotFound, StorageError
from handlers.domain.tenancy import ApiKey, Role

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

__all__ = ["KEY_ITEMS", "KEY_PREFIX", "REGISTRY_ID", "DynamoKeyStore"]

KEY_PREFIX, REGISTRY_ID = "apikey#", "apikeys"
KEY_ITEMS: Final = (KEY_PREFIX, REGISTRY_ID)
"""What the ``id`` of every item of the key store starts with (none is a job)."""
CANCELLED, CHECK_FAILED, TX_CONFLICT = "TransactionCanceledException", "ConditionalCheckFailed", "TransactionConflict"
_CANCELLERS = frozenset({CHECK_FAILED, TX_CONFLICT})  # the reasons a write is cancelled for, not failed
REVOKE_ATTEMPTS, CONFLICT_ATTEMPTS = 3, 8
BACKOFF_BASE, BACKOFF_CAP = 0.02, 1.0
_ENTRY = "k#"


def _s(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def _n(value: float) -> AttributeValueTypeDef:
    return {"N": repr(float(value))}


class DynamoKeyStore:
    """:class:`~handlers.ports.KeyStore` in the DynamoDB table ``table`` (the job table).

    ``sleep`` and ``jitter`` (a number in ``[0, 1)``) pace the retries of a transaction another one was busy with.
    """

    def __init__(self, client: DynamoDBClient, table: str, *, sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random) -> None:
        self._client = client
        self.table = table
        self._sleep = sleep
        self._jitter = jitter

    def add_key(self, key: ApiKey) -> None:
        """The key's item and its registry entry, in one transaction; ``Conflict`` if either exists."""
        fields = _fields(key)
        put: TransactWriteItemTypeDef = {"Put": {
            "TableName": self.table, "Item": {"id": _s(KEY_PREFIX + key.digest), **fields},
            "ConditionExpression": "attribute_not_exists(id)"}}
        register: TransactWriteItemTypeDef = {"Update": {
            "TableName": self.table, "Key": {"id": _s(REGISTRY_ID)},
            "UpdateExpression": "SET #k = :entry", "ConditionExpression": "attribute_not_exists(#k)",
            "ExpressionAttributeNames": {"#k": _ENTRY + key.id},
            "ExpressionAttributeValues": {":entry": {"M": {**fields, "digest": _s(key.digest)}}}}}
        if not self._write([put, register], f"add key {key.id!r}"):
            raise Conflict(f"a key with the id {key.id!r} or the same digest is already stored")

    def key_by_digest(self, digest: str) -> ApiKey | None:
        """One consistent ``GetItem`` of ``apikey#<digest>``."""
        with aws_errors(StorageError, "look up an API key"):
            item = self._client.get_item(TableName=self.table, Key={"id": _s(KEY_PREFIX + digest)},
                                         ConsistentRead=True).get("Item")
        return None if item is None else _key(item, digest)

    def keys(self) -> list[ApiKey]:
        """One consistent ``GetItem`` of the registry, oldest first."""
        keys = [_key(entry, entry["digest"]["S"]) for entry in self._registry().values()]
        return sorted(keys, key=lambda key: (key.created_at, key.id))

    def revoke_key(self, key_id: str, now: float) -> ApiKey:
        """Find the digest in the registry, then set ``revoked_at`` on both items while it is unset.

        A revocation that loses a race to another one answers the key as the other left it."""
        for _ in range(REVOKE_ATTEMPTS):
            entry = self._registry().get(key_id)
            if entry is None:
                raise NotFound(f"no key {key_id!r}")
            key = _key(entry, entry["digest"]["S"])
            if key.revoked:
                return key
            if self._write(self._revocation(key, now), f"revoke key {key_id!r}"):
                return replace(key, revoked_at=now)
        raise Conflict(f"revoke key {key_id!r}: its record kept changing; try again")

    def _revocation(self, key: ApiKey, now: float) -> list[TransactWriteItemTypeDef]:
        mark: TransactWriteItemTypeDef = {"Update": {
            "TableName": self.table, "Key": {"id": _s(KEY_PREFIX + key.digest)},
            "UpdateExpression": "SET revoked_at = :now",
            "ConditionExpression": "attribute_exists(id) AND attribute_not_exists(revoked_at)",
            "ExpressionAttributeValues": {":now": _n(now)}}}
        entry: TransactWriteItemTypeDef = {"Update": {
            "TableName": self.table, "Key": {"id": _s(REGISTRY_ID)},
            "UpdateExpression": "SET #k.revoked_at = :now",
            "ConditionExpression": "attribute_exists(#k) AND attribute_not_exists(#k.revoked_at)",
            "ExpressionAttributeNames": {"#k": _ENTRY + key.id}, "ExpressionAttributeValues": {":now": _n(now)}}}
        return [mark, entry]

    def _registry(self) -> dict[str, Mapping[str, Any]]:
        """The registry's entries by key id (none before the first key)."""
        with aws_errors(StorageError, "list the API keys"):
            item = self._client.get_item(TableName=self.table, Key={"id": _s(REGISTRY_ID)},
                                         ConsistentRead=True).get("Item") or {}
        return {name.removeprefix(_ENTRY): value["M"] for name, value in item.items() if name.startswith(_ENTRY)}

    def _write(self, items: Sequence[TransactWriteItemTypeDef], what: str) -> bool:
        """Write ``items`` together: ``True`` once written, ``False`` if a condition failed. A transaction
        another one was busy with (the registry is one item) is tried again after a jittered backoff."""
        for attempt in range(CONFLICT_ATTEMPTS):
            codes = self._transact(items, what)
            if codes is None:
                return True
            if CHECK_FAILED in codes:
                return False
            if attempt + 1 < CONFLICT_ATTEMPTS:
                self._sleep(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt) * self._jitter())
        raise Conflict(f"{what}: other writes to the API keys kept conflicting; try again")

    def _transact(self, items: Sequence[TransactWriteItemTypeDef], what: str) -> set[str] | None:
        """``None`` once written; the cancellation reasons' codes when a condition or another transaction
        cancelled it; any other error leaves as ``StorageError``."""
        try:
            self._client.transact_write_items(TransactItems=list(items))
        except ClientError as exc:
            reasons = (exc.response.get("CancellationReasons") or []) if error_code(exc) == CANCELLED else []
            codes = {str(reason.get("Code")) for reason in reasons}
            if not codes & _CANCELLERS or not codes <= {*_CANCELLERS, "None"}:
                raise translate(exc, StorageError, what) from exc
            return codes
        except BotoCoreError as exc:
            raise translate(exc, StorageError, what) from exc
        return None


def _fields(key: ApiKey) -> dict[str, AttributeValueTypeDef]:
    fields = {"key_id": _s(key.id), "tenant": _s(key.tenant), "role": _s(Role(key.role).value),
              "created_at": _n(key.created_at)}
    if key.revoked_at is not None:
        fields["revoked_at"] = _n(key.revoked_at)
    return fields


def _key(fields: Mapping[str, Any], digest: str) -> ApiKey:
    revoked = fields.get("revoked_at")
    return ApiKey(id=fields["key_id"]["S"], tenant=fields["tenant"]["S"], role=Role(fields["role"]["S"]),
                  digest=digest, created_at=float(fields["created_at"]["N"]),
                  revoked_at=None if revoked is None else float(revoked["N"]))
