"""The slot pool as one item of the job table, ``slots#pool``.

The item holds three maps: ``leases`` (job id → ``{tenant, until}``, every lease not yet found
expired), ``lapsed`` (leases found expired and not yet released, so ``expired`` can still list
them) and ``tenants`` (tenant → how many entries of ``leases`` are theirs). It has no ``record``
and none of the index attributes, so no job read, page, count or index ever sees it.

**Acquire is one ``UpdateItem``** that adds the lease and bumps the tenant's count under the
condition ``attribute_not_exists(leases.<job>) AND size(leases) < :cap AND tenants.<tenant> <
:tenant_cap``. DynamoDB applies writes to one item one at a time, each against the item as the
last one left it, so no two acquires pass a cap together, and none has to retry because another
wrote first. When the condition fails, the item as it stood comes back with the refusal
(``ReturnValuesOnConditionCheckFailure``): if it shows the job already holding an unexpired
lease, the lease is extended and the answer is yes; if every lease in it is unexpired, the cap
was really reached and the answer is no; otherwise the expired leases are swept into
``lapsed`` (one conditional ``UpdateItem`` that also lowers their tenants' counts) and the
acquire is tried again. So an expired lease never counts, and the common path is one request.

**Why one item, and not lease items with counters in a ``TransactWriteItems``.** A transaction
that bumps a shared counter item fails with ``TransactionConflict`` whenever another transaction
touches the counter at the same moment, so concurrent submits would retry in a loop; and a
counter cannot tell an expired lease from a live one without reading every lease, which needs
an index (this table's indexes belong to the jobs) or a ``Scan``. A read-modify-write of one
item conditional on a version has the same loop. One conditional ``UpdateItem`` has none.
Its costs: a release reads the item first (to learn the lease's tenant), and every write is
billed on the whole item. For plan limits of 1 to 200 tasks the item stays under 30 KB (a lease
is under 130 bytes with a 63-character tenant; DynamoDB's limit is 400 KB, room for some 3,000
leases, hence :data:`~handlers.domain.admission.IN_FLIGHT_LIMIT`), so a write costs at most
30 WCU, and one item's 1,000 WCU/s allow over 30 acquires or releases a second: tasks at
EvoLink run for minutes, so 200 of them turn over a few times a second at most.

``release`` and ``renew`` are conditional on what they read, and every loop is bounded
(:data:`ATTEMPTS`); AWS errors leave as the project's (``StorageError``, ``Conflict``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers.adapters.aws.errors import CONDITION_FAILED, aws_errors, error_code, translate
from handlers.base.errors import Conflict, StorageError
from handlers.ports import SlotLease

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["ATTEMPTS", "MAX_TURNS", "POOL_ID", "RETENTION", "SWEEP_BATCH", "DynamoSlotPool"]

POOL_ID = "slots#pool"
ATTEMPTS = 8
SWEEP_BATCH = 50
MAX_TURNS = 64
RETENTION = 7 * 86_400.0
_NAMES = {"#leases": "leases", "#lapsed": "lapsed", "#tenants": "tenants", "#tn": "tenant", "#u": "until"}
_EMPTY: dict[str, Any] = {"M": {}}


class DynamoSlotPool:
    """:class:`~handlers.ports.SlotPool` as the item :data:`POOL_ID` of the DynamoDB table ``table``.

    ``retention``: how long past its end an unreleased lease stays listed by ``expired``.
    """

    def __init__(self, client: DynamoDBClient, table: str, *, retention: float = RETENTION) -> None:
        self._client = client
        self.table = table
        self.retention = retention

    def acquire(self, job_id: str, tenant: str, *, now: float, until: float, cap: int,
                tenant_cap: int | None) -> bool:
        """Every turn of the loop but a sweep that made room counts against :data:`ATTEMPTS` (all turns:
        :data:`MAX_TURNS`, room to sweep the most leases the item holds)."""
        races = 0
        for _ in range(MAX_TURNS):
            refused = self._try_acquire(job_id, tenant, until=until, cap=cap, tenant_cap=tenant_cap)
            if refused is None:
                return True
            leases, lapsed = _entries(refused, "leases"), _entries(refused, "lapsed")
            mine = leases.get(job_id)
            stale = [lease for lease in leases.values() if lease.until <= now]
            if "leases" not in refused:
                self._create_pool()
            elif mine is not None and mine.until > now:
                if self.renew(job_id, now=now, until=until):
                    return True
            elif not stale:
                return False
            elif self._sweep(stale, [lease for lease in lapsed.values() if lease.until <= now - self.retention]):
                continue
            races += 1
            if races == ATTEMPTS:
                break
        raise Conflict(f"slot pool: acquiring a slot for job {job_id!r}: other writers kept changing the pool")

    def renew(self, job_id: str, *, now: float, until: float) -> bool:
        """Move ``until`` later (never earlier) while the lease is unexpired."""
        refused = self._update(
            f"renew the slot of job {job_id!r}", "SET #leases.#j.#u = :until",
            "#leases.#j.#u > :now AND #leases.#j.#u < :until",
            {"#j": job_id}, {":until": _number(until), ":now": _number(now)})
        if refused is None:
            return True
        held = _entries(refused, "leases").get(job_id)
        return held is not None and held.until > now

    def release(self, job_id: str) -> None:
        for _ in range(ATTEMPTS):
            item = self._read(f"release the slot of job {job_id!r}")
            leases, lapsed = _entries(item, "leases"), _entries(item, "lapsed")
            if job_id in lapsed:
                self._update(f"release the slot of job {job_id!r}", "REMOVE #lapsed.#j", None, {"#j": job_id}, {})
                return
            held = leases.get(job_id)
            if held is None:
                return
            refused = self._update(
                f"release the slot of job {job_id!r}", "REMOVE #leases.#j SET #tenants.#t = #tenants.#t - :one",
                "#leases.#j.#tn = :tenant", {"#j": job_id, "#t": held.tenant},
                {":one": {"N": "1"}, ":tenant": {"S": held.tenant}})
            if refused is None:
                return
        raise Conflict(f"slot pool: releasing the slot of job {job_id!r} lost {ATTEMPTS} races in a row")

    def leases(self, now: float) -> list[SlotLease]:
        item = self._read("list slot leases")
        return _soonest([lease for lease in _entries(item, "leases").values() if lease.until > now])

    def expired(self, now: float, limit: int = 100) -> list[SlotLease]:
        item = self._read("list expired slot leases")
        ended = [*_entries(item, "leases").values(), *_entries(item, "lapsed").values()]
        return _soonest([lease for lease in ended if now - self.retention < lease.until <= now])[:max(limit, 0)]

    def _try_acquire(self, job_id: str, tenant: str, *, until: float, cap: int,
                     tenant_cap: int | None) -> dict[str, Any] | None:
        condition = "attribute_exists(#leases) AND attribute_not_exists(#leases.#j) AND size(#leases) < :cap"
        values: dict[str, Any] = {":lease": _lease(tenant, until), ":cap": {"N": str(cap)},
                                  ":zero": {"N": "0"}, ":one": {"N": "1"}}
        if tenant_cap is not None:  # a tenant with no count yet has 0 leases: room unless the tenant cap is 0
            condition += (" AND (attribute_not_exists(#tenants.#t) OR #tenants.#t < :tenant_cap)" if tenant_cap > 0
                          else " AND #tenants.#t < :tenant_cap")
            values[":tenant_cap"] = {"N": str(tenant_cap)}
        return self._update(
            f"acquire a slot for job {job_id!r}",
            "SET #leases.#j = :lease, #tenants.#t = if_not_exists(#tenants.#t, :zero) + :one REMOVE #lapsed.#j",
            condition, {"#j": job_id, "#t": tenant}, values)

    def _sweep(self, stale: list[SlotLease], forgotten: list[SlotLease]) -> bool:
        """Move ``stale`` leases (still as read) to ``lapsed`` and lower their tenants' counts; drop
        ``forgotten`` lapsed ones; whether it was written. A lease renewed or released meanwhile fails
        the write, and nothing changes."""
        stale, forgotten = stale[:SWEEP_BATCH], forgotten[:SWEEP_BATCH]
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        sets: list[str] = []
        removes: list[str] = []
        conditions: list[str] = []
        for n, lease in enumerate(stale):
            names[f"#s{n}"] = lease.job_id
            values.update({f":s{n}": _lease(lease.tenant, lease.until), f":u{n}": _number(lease.until)})
            removes.append(f"#leases.#s{n}")
            sets.append(f"#lapsed.#s{n} = :s{n}")
            conditions.append(f"#leases.#s{n}.#u = :u{n}")
        for n, (tenant, count) in enumerate(Counter(lease.tenant for lease in stale).items()):
            names[f"#t{n}"] = tenant
            values[f":d{n}"] = {"N": str(count)}
            sets.append(f"#tenants.#t{n} = #tenants.#t{n} - :d{n}")
        for n, lease in enumerate(forgotten):
            names[f"#f{n}"] = lease.job_id
            values[f":f{n}"] = _number(lease.until)
            removes.append(f"#lapsed.#f{n}")
            conditions.append(f"#lapsed.#f{n}.#u = :f{n}")
        return self._update("sweep expired slot leases", f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
                            " AND ".join(conditions), names, values) is None

    def _create_pool(self) -> None:
        """Create the item with its three empty maps, keeping any that exist (safe to race)."""
        self._update("create the slot pool",
                     "SET #leases = if_not_exists(#leases, :empty), #lapsed = if_not_exists(#lapsed, :empty),"
                     " #tenants = if_not_exists(#tenants, :empty)", None, {}, {":empty": _EMPTY})

    def _read(self, what: str) -> dict[str, Any]:
        with aws_errors(StorageError, f"slot pool: {what}"):
            return dict(self._client.get_item(TableName=self.table, Key=_KEY, ConsistentRead=True).get("Item")
                        or {})

    def _update(self, what: str, expression: str, condition: str | None, names: Mapping[str, str],
                values: Mapping[str, Any]) -> dict[str, Any] | None:
        """One ``UpdateItem``; ``None`` if it was written, else the item as the failed condition saw it."""
        request: dict[str, Any] = {"TableName": self.table, "Key": _KEY, "UpdateExpression": expression,
                                   "ExpressionAttributeNames": _used({**_NAMES, **names}, expression, condition)}
        if values:
            request["ExpressionAttributeValues"] = dict(values)
        if condition is not None:
            request.update(ConditionExpression=condition, ReturnValuesOnConditionCheckFailure="ALL_OLD")
        try:
            self._client.update_item(**request)
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise translate(exc, StorageError, f"slot pool: {what}") from exc
            stored = exc.response.get("Item")
            return dict(stored) if isinstance(stored, Mapping) else {}
        except BotoCoreError as exc:
            raise translate(exc, StorageError, f"slot pool: {what}") from exc
        return None


_KEY: dict[str, Any] = {"id": {"S": POOL_ID}}


def _used(names: Mapping[str, str], *expressions: str | None) -> dict[str, str]:
    """The placeholders the expressions use (DynamoDB refuses unused ones)."""
    text = " ".join(expression for expression in expressions if expression)
    return {placeholder: name for placeholder, name in names.items() if _mentions(text, placeholder)}


def _mentions(text: str, placeholder: str) -> bool:
    start = text.find(placeholder)
    while start != -1:
        end = start + len(placeholder)
        if end == len(text) or not (text[end].isalnum() or text[end] == "_"):
            return True
        start = text.find(placeholder, end)
    return False


def _number(value: float) -> dict[str, str]:
    return {"N": repr(float(value))}


def _lease(tenant: str, until: float) -> dict[str, Any]:
    return {"M": {"tenant": {"S": tenant}, "until": _number(until)}}


def _entries(item: Mapping[str, Any], name: str) -> dict[str, SlotLease]:
    """The map ``name`` of the pool item as leases by job id (empty if absent)."""
    return dict(_parse(item.get(name, _EMPTY)))


def _parse(value: Mapping[str, Any]) -> Iterator[tuple[str, SlotLease]]:
    for job_id, entry in value.get("M", {}).items():
        fields = entry["M"]
        yield job_id, SlotLease(job_id, fields["tenant"]["S"], float(fields["until"]["N"]))


def _soonest(leases: list[SlotLease]) -> list[SlotLease]:
    return sorted(leases, key=lambda lease: (lease.until, lease.job_id))
