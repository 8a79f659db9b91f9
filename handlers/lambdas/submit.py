"""Submit from the requests queue, for event-driven callers.

A message body is what ``POST /v1/jobs`` takes: a generation request plus an optional
``metadata`` object and ``cancel_after`` (seconds to the job's deadline). The idempotency key is
the message attribute ``Idempotency-Key`` when present, else the SQS message id, so a redelivered
message never submits twice. The message attribute ``Tenant`` names the job's tenant (``default``
without it): whoever may send to the queue is trusted as an operator is, through IAM. A request
that breaks a rule becomes a ``rejected`` job and event naming every violation.
"""

from __future__ import annotations

from typing import Any

from handlers.adapters.aws.sqs_batch import Record, batch_response, records
from handlers.base.errors import BudgetExceeded, Conflict, InvalidRequest, Violation
from handlers.base.jsonbody import parse_object
from handlers.base.logs import get_logger
from handlers.domain.tenancy import DEFAULT_TENANT, TENANT_PATTERN
from handlers.lambdas._relay import flush_metrics, relay
from handlers.usecases import record_rejection, submit
from handlers.usecases.submit import IdempotencyKeyReused

__all__ = ["SCOPE", "handler"]

SCOPE = "requests-queue"
log = get_logger(__name__)


def _idempotency_key(record: Record) -> str:
    attribute = record.attributes.get("Idempotency-Key") or {}
    value = attribute.get("stringValue") or attribute.get("StringValue")
    return str(value) if value else record.message_id


def _tenant(record: Record) -> str:
    attribute = record.attributes.get("Tenant") or {}
    value = attribute.get("stringValue") or attribute.get("StringValue")
    return str(value) if value else DEFAULT_TENANT


def _parse(record: Record) -> tuple[dict[str, Any], Any, Any]:
    """The message's request, its ``metadata`` and its ``cancel_after`` (both checked by the submit)."""
    body = parse_object(record.body, what="message body")
    return body, body.pop("metadata", {}), body.pop("cancel_after", None)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    current = relay()

    def handle(record: Record) -> bool:
        key, tenant = _idempotency_key(record), _tenant(record)
        request: dict[str, Any] | None = None
        metadata: Any = {}
        try:
            if not TENANT_PATTERN.match(tenant):
                raise InvalidRequest([Violation("Tenant", "invalid_format", "the Tenant attribute must be 1-63 of "
                                                "a-z 0-9 _ -")])
            request, metadata, cancel_after = _parse(record)
            job = submit(current, request, metadata=metadata, idempotency_key=key, scope=SCOPE, tenant=tenant,
                         cancel_after=cancel_after)
        except (InvalidRequest, BudgetExceeded) as exc:
            job = record_rejection(current, request, metadata=metadata, idempotency_key=key, scope=SCOPE, error=exc,
                                   tenant=tenant if TENANT_PATTERN.match(tenant) else DEFAULT_TENANT)
        except Conflict as exc:
            earlier = {"job_id": exc.job_id} if isinstance(exc, IdempotencyKeyReused) else {}
            log.warning("submit.conflict", message_id=record.message_id, code=exc.code, **earlier)
            return True
        log.info("submit.done", message_id=record.message_id, job_id=job.id, status=job.status.value)
        return True

    try:
        return batch_response(records(event), handle)
    finally:
        flush_metrics()
