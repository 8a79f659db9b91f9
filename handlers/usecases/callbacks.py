"""Accept a provider callback: size limit, capability token, JSON check, durable enqueue.

The body is only a hint (it may name the task of a job whose create outcome was unknown);
the truth is read back from the provider by the ingest worker.
"""

from __future__ import annotations

from handlers.errors import NotFound, PayloadTooLarge, Unauthorized
from handlers.evolink.task import is_task_id
from handlers.jsonbody import parse_object
from handlers.relay import Relay

__all__ = ["accept_callback"]


def accept_callback(relay: Relay, job_id: str, token: str | None, raw: bytes) -> str:
    """Queue the job for ingestion; returns the queue message id."""
    limit = relay.settings.callback_max_bytes
    if len(raw) > limit:
        raise PayloadTooLarge(f"callback body is over {limit} bytes")
    if not relay.signer.verify(job_id, token):
        raise Unauthorized("unknown job or invalid token")
    try:
        relay.jobs.get(job_id)
    except NotFound as exc:
        raise Unauthorized("unknown job or invalid token") from exc
    body = parse_object(raw, what="callback body")
    hint = body.get("id")
    task_hint = hint if isinstance(hint, str) and is_task_id(hint) else None
    return relay.ingest_queue.send({"job_id": job_id, "task_id": task_hint, "source": "callback"})
