"""The budget ledger in the job table (DynamoDB), beside the jobs.

Its items carry none of the job table's index attributes (``due_shard``, ``kind``, ``status``,
``created_key``, ``check_at``) and no ``record``, so no index, page or job lookup ever sees them:

* ``budget#<tenant>#<period>``: the totals, ``held``, ``spent``, ``jobs`` and ``committed``
  (``held + spent``, kept because a condition expression cannot add);
* ``hold#<job_id>``: one job's hold, ``state`` ``held`` → ``settled``, ``credits`` and ``spent``;
* ``budget-tenants#<period>``: the tenants with totals in the period (a string set);
* ``budgetcfg``: the budgets set at run time, one attribute ``t#<tenant>`` per tenant.

Tenant names cannot hold ``#`` (:data:`~handlers.domain.tenancy.TENANT_PATTERN`), so the keys
never collide. Amounts are decimal numbers rounded to a millionth of a credit; DynamoDB adds
decimals exactly, so a hold settled to ``0`` leaves exactly ``0``.

**hold** is one ``TransactWriteItems``: an ``UpdateItem`` of the totals that adds the credits,
on the condition ``committed <= budget - credits`` (none without a budget), and a ``PutItem``
of the hold on ``attribute_not_exists(id)``. The transaction's cancellation reasons tell the
cases apart: the hold's condition failed (a repeated hold: the usage, unchanged), the totals'
condition failed (refused: ``None``, nothing written, once a read of the hold confirms the job
holds nothing), or another transaction was busy with one of the items (``TransactionConflict``:
tried again after a jittered backoff, up to :data:`CONFLICT_ATTEMPTS` times, then a
``StorageError`` with code ``throttled``).
**settle** reads the hold, then in one transaction marks it ``settled`` on the condition that
it is still ``held`` and moves its credits from ``held`` to ``spent`` on the totals.

**usages** reads no more than the period's tenants: the table's only key is ``id`` (no sort
key to range over) and its indexes belong to the jobs, so listing the ``budget#`` items would
take a ``Scan`` of every job or a new index. Instead each tenant is added (``ADD`` to a string
set, idempotent) to ``budget-tenants#<period>`` before its first hold of the period, once per
process; that write never takes part in a transaction, so it never conflicts with the holds.
``usages`` is then one ``GetItem`` and a ``BatchGetItem`` of the tenants' totals. The budgets
are one item so that ``budgets`` is one ``GetItem`` and setting one tenant's budget (``SET``
or ``REMOVE`` of its attribute) never overwrites another's. A ledger keeps what it read for
``config_ttl`` seconds (``CONFIG_TTL``): a submit reads no budget item, and a budget set through
another process (another Lambda container, the CLI) applies within that time.

Totals, holds and tenant lists expire through the table's TTL ``ttl_days`` after their period ends.
IAM: ``TransactWriteItems`` needs no action of its own; its parts need ``dynamodb:UpdateItem`` and
``dynamodb:PutItem``, and the reads ``dynamodb:GetItem`` and ``dynamodb:BatchGetItem``.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from handlers.adapters.aws.batch import batch_get
from handlers.adapters.aws.errors import aws_errors, error_code, translate
from handlers.base.errors import StorageError
from handlers.domain.budgets import Budget, Per, Usage, period_resets_at

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef, UpdateTypeDef

__all__ = ["BUDGET_PREFIXES", "CONFIG_ID", "CONFIG_TTL", "HOLD_PREFIX", "TENANTS_PREFIX", "TOTALS_PREFIX",
           "DynamoBudgetLedger"]

TOTALS_PREFIX, HOLD_PREFIX, TENANTS_PREFIX, CONFIG_ID = "budget#", "hold#", "budget-tenants#", "budgetcfg"
BUDGET_PREFIXES: Final = (TOTALS_PREFIX, HOLD_PREFIX, TENANTS_PREFIX, CONFIG_ID)
"""What every ledger item's ``id`` starts with (none is a job)."""
CANCELLED, CHECK_FAILED, TX_CONFLICT = "TransactionCanceledException", "ConditionalCheckFailed", "TransactionConflict"
NO_REASON, HELD, SETTLED = "None", "held", "settled"
CONFIG_TTL = 10.0
"""Seconds a ledger keeps the run-time budgets it read before it reads them again (two reads fewer per submit)."""


CONFLICT_ATTEMPTS = 8
BACKOFF_BASE, BACKOFF_CAP = 0.02, 1.0
DAY = 86_400.0
MICRO = Decimal(1_000_000)
_BUDGET_ATTRIBUTE = "t#"


def _amount(credits: float, what: str) -> Decimal:
    """``credits`` as a decimal rounded to a millionth; a negative, infinite or NaN amount is a ``ValueError``."""
    if not math.isfinite(credits) or credits < 0:
        raise ValueError(f"{what} must be a finite number of credits, 0 or more, got {credits!r}")
    return Decimal(round(credits * 1_000_000)) / MICRO


def _n(value: Decimal | int) -> AttributeValueTypeDef:
    return {"N": str(value)}


def _s(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def _number(item: Mapping[str, Any], name: str) -> Decimal:
    return Decimal(item[name]["N"]) if name in item else Decimal(0)


class DynamoBudgetLedger:
    """:class:`~handlers.ports.BudgetLedger` in the DynamoDB table ``table`` (the job table).

    ``clock`` stamps holds and settles; ``sleep`` and ``jitter`` (a number in ``[0, 1)``) pace the
    retries of a transaction another one was busy with; ``ttl_days`` is how long a period's items
    are kept after it ends.
    """

    def __init__(self, client: DynamoDBClient, table: str, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, jitter: Callable[[], float] = random.random,
                 ttl_days: float = 90, config_ttl: float = CONFIG_TTL) -> None:
        self._client = client
        self.table = table
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self.ttl_days = ttl_days
        self._registered: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.config_ttl = config_ttl
        self._config: tuple[float, dict[str, Budget]] | None = None

    def hold(self, tenant: str, period: str, job_id: str, credits: float, *, limit: float | None) -> bool:
        amount = _amount(credits, "credits")
        room = None if limit is None else _amount(limit, "limit") - amount
        self._register(tenant, period)
        items = [self._add_to_totals(tenant, period, amount, room), self._new_hold(tenant, period, job_id, amount)]
        what = f"hold credits for job {job_id!r}"
        for attempt in range(CONFLICT_ATTEMPTS):
            reasons = self._transact(items, what)
            if reasons is None:
                return True
            totals, held = reasons
            if held == CHECK_FAILED or (totals == CHECK_FAILED and held == NO_REASON):
                return self._held_already(job_id, what)
            self._back_off(attempt)
        raise _busy(what)

    def settle(self, tenant: str, period: str, job_id: str, credits: float, *, held: float | None = None) -> None:
        """Settle against the totals the hold was taken from: its stored tenant and period, read first, or
        ``tenant`` and ``period`` as given with ``held`` (then the transaction's condition alone says whether
        the hold is still ``held``)."""
        spent = _amount(credits, "credits")
        what = f"settle the hold of job {job_id!r}"
        known = None if held is None else {"tenant": _s(tenant), "period": _s(period),
                                           "credits": _n(_amount(held, "held")), "state": _s(HELD)}
        for attempt in range(CONFLICT_ATTEMPTS):
            stored = known or self._get(HOLD_PREFIX + job_id, what)
            if stored is None or stored.get("state", {}).get("S") != HELD:
                return
            reasons = self._transact(self._settle_items(stored, job_id, spent), what)
            if reasons is None or reasons[0] == CHECK_FAILED:
                return
            self._back_off(attempt)
        raise _busy(what)

    def usage(self, tenant: str, period: str) -> Usage:
        item = self._get(_totals_id(tenant, period), f"read the usage of tenant {tenant!r}")
        return _usage(tenant, period, item or {})

    def usages(self, period: str) -> list[Usage]:
        """The period's tenant list, then their totals in ``BatchGetItem`` calls of up to 100 keys."""
        listed = self._get(TENANTS_PREFIX + period, f"list the tenants of {period}") or {}
        tenants = sorted(listed.get("tenants", {}).get("SS", []))
        found = {item["tenant"]["S"]: item for item in self._batch_get([_totals_id(t, period) for t in tenants])}
        return [_usage(tenant, period, found[tenant]) for tenant in tenants if tenant in found]

    def set_budget(self, tenant: str, budget: Budget | None) -> None:
        """``SET`` (or ``REMOVE``) the tenant's attribute of the ``budgetcfg`` item."""
        request: dict[str, Any] = {"TableName": self.table, "Key": {"id": _s(CONFIG_ID)},
                                   "ExpressionAttributeNames": {"#t": _BUDGET_ATTRIBUTE + tenant}}
        if budget is None:
            request["UpdateExpression"] = "REMOVE #t"
        else:
            _amount(budget.credits, "budget")
            request["UpdateExpression"] = "SET #t = :b"
            request["ExpressionAttributeValues"] = {":b": {"M": {
                "credits": _n(Decimal(repr(float(budget.credits)))), "per": _s(Per(budget.per).value)}}}
        self._config = None
        with aws_errors(StorageError, f"set the budget of tenant {tenant!r}"):
            self._client.update_item(**request)

    def budgets(self) -> dict[str, Budget]:
        """The budgets set at run time; read again once ``config_ttl`` seconds have passed since the last read
        (a change made through this ledger applies at once, one made elsewhere within ``config_ttl``)."""
        cached, now = self._config, self._clock()
        if cached is not None and now < cached[0]:
            return dict(cached[1])
        item = self._get(CONFIG_ID, "read the budgets") or {}
        found = {name.removeprefix(_BUDGET_ATTRIBUTE): Budget(float(value["M"]["credits"]["N"]),
                                                              Per(value["M"]["per"]["S"]))
                 for name, value in sorted(item.items()) if name.startswith(_BUDGET_ATTRIBUTE)}
        if self.config_ttl > 0:
            self._config = (now + self.config_ttl, found)
        return dict(found)

    def _register(self, tenant: str, period: str) -> None:
        """Add ``tenant`` to the period's tenant list, unless this process already did."""
        if (tenant, period) in self._registered:
            return
        with aws_errors(StorageError, f"list tenant {tenant!r} in {period}"):
            self._client.update_item(
                TableName=self.table, Key={"id": _s(TENANTS_PREFIX + period)},
                UpdateExpression="ADD tenants :tenant SET expires_at = :expires",
                ExpressionAttributeValues={":tenant": {"SS": [tenant]}, ":expires": self._expires(period)})
        with self._lock:
            self._registered.add((tenant, period))

    def _add_to_totals(self, tenant: str, period: str, amount: Decimal,
                       room: Decimal | None) -> TransactWriteItemTypeDef:
        values: dict[str, AttributeValueTypeDef] = {
            ":tenant": _s(tenant), ":period": _s(period), ":amount": _n(amount), ":zero": _n(0), ":one": _n(1),
            ":expires": self._expires(period)}
        update: UpdateTypeDef = {
            "TableName": self.table, "Key": {"id": _s(_totals_id(tenant, period))},
            "UpdateExpression": ("SET tenant = :tenant, period = :period, expires_at = :expires"
                                 " ADD held :amount, committed :amount, spent :zero, jobs :one"),
            "ExpressionAttributeValues": values}
        if room is not None:
            # A missing totals item has committed nothing: it passes while the hold fits at all.
            fits_empty = "attribute_not_exists(committed) OR " if room >= 0 else ""
            update["ConditionExpression"] = fits_empty + "committed <= :room"
            values[":room"] = _n(room)
        return {"Update": update}

    def _new_hold(self, tenant: str, period: str, job_id: str, amount: Decimal) -> TransactWriteItemTypeDef:
        item: dict[str, AttributeValueTypeDef] = {
            "id": _s(HOLD_PREFIX + job_id), "tenant": _s(tenant), "period": _s(period), "state": _s(HELD),
            "credits": _n(amount), "held_at": {"N": repr(self._clock())}, "expires_at": self._expires(period)}
        return {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(id)"}}

    def _settle_items(self, stored: Mapping[str, Any], job_id: str, spent: Decimal) -> list[TransactWriteItemTypeDef]:
        held = _number(stored, "credits")
        tenant, period = stored["tenant"]["S"], stored["period"]["S"]
        mark: TransactWriteItemTypeDef = {"Update": {
            "TableName": self.table, "Key": {"id": _s(HOLD_PREFIX + job_id)},
            "UpdateExpression": "SET #state = :settled, spent = :spent, settled_at = :now",
            "ConditionExpression": "#state = :held", "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": {":settled": _s(SETTLED), ":held": _s(HELD), ":spent": _n(spent),
                                          ":now": {"N": repr(self._clock())}}}}
        move: TransactWriteItemTypeDef = {"Update": {
            "TableName": self.table, "Key": {"id": _s(_totals_id(tenant, period))},
            "UpdateExpression": "ADD held :release, spent :spent, committed :change",
            "ExpressionAttributeValues": {":release": _n(-held), ":spent": _n(spent), ":change": _n(spent - held)}}}
        return [mark, move]

    def _held_already(self, job_id: str, what: str) -> bool:
        """After a refusal: whether the job holds already (a repeated hold).

        The hold is read rather than trusted to the cancellation reasons, which need not report
        every failed condition once one has failed."""
        return self._get(HOLD_PREFIX + job_id, what) is not None

    def _transact(self, items: Sequence[TransactWriteItemTypeDef], what: str) -> list[str] | None:
        """``None`` once written; the cancellation reason of each item (``None``, ``ConditionalCheckFailed``
        or ``TransactionConflict``) when a condition or another transaction cancelled it. Anything else
        leaves as the project's error."""
        try:
            self._client.transact_write_items(TransactItems=list(items))
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or [] if error_code(exc) == CANCELLED else []
            codes = [str(reason.get("Code") or NO_REASON) for reason in reasons]
            if len(codes) != len(items) or not set(codes) <= {NO_REASON, CHECK_FAILED, TX_CONFLICT}:
                raise translate(exc, StorageError, what) from exc
            return codes
        except BotoCoreError as exc:
            raise translate(exc, StorageError, what) from exc
        return None

    def _back_off(self, attempt: int) -> None:
        self._sleep(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt) * self._jitter())

    def _get(self, item_id: str, what: str) -> dict[str, Any] | None:
        with aws_errors(StorageError, what):
            item = self._client.get_item(TableName=self.table, Key={"id": _s(item_id)},
                                         ConsistentRead=True).get("Item")
        return dict(item) if item is not None else None

    def _batch_get(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        return batch_get(self._client, self.table, ids, what="read the totals of tenants", sleep=self._sleep)

    def _expires(self, period: str) -> AttributeValueTypeDef:
        return _n(int(period_resets_at(period) + self.ttl_days * DAY))


def _busy(what: str) -> StorageError:
    error = StorageError(f"{what}: other writers kept the tenant's totals busy for {CONFLICT_ATTEMPTS} attempts",
                         code="throttled")
    error.aws_code = TX_CONFLICT
    return error


def _totals_id(tenant: str, period: str) -> str:
    return f"{TOTALS_PREFIX}{tenant}#{period}"


def _usage(tenant: str, period: str, item: Mapping[str, Any]) -> Usage:
    return Usage(tenant, period, float(_number(item, "held")), float(_number(item, "spent")),
                 int(_number(item, "jobs")))
