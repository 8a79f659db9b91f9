"""Accept a provider callback: size limit, capability token, JSON check, durable enqueue.

The body is only a hint (it may name the task of a job whose create outcome was unknown);
the truth is read back from the provider by the ingest worker. ``check_callback`` does the
checks that need no I/O; ``accept_callbacks`` looks the jobs up and queues a whole batch at
once (the API groups the callbacks that arrive together, see ``handlers.api.callback_batch``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from handlers.app.relay import Relay
from handlers.base.errors import PayloadTooLarge, Unauthorized
from handlers.base.jsonbody import parse_object
from handlers.provider.evolink.task import is_task_id

__all__ = ["accept_callback", "accept_callbacks", "check_callback"]


def check_callback(relay: Relay, job_id: str, token: str | None, raw: bytes) -> dict[str, Any]:
    """The queue message for a callback whose size, token and JSON are right."""
    limit = relay.settings.callback_max_bytes
    if len(raw) > limit:
        raise PayloadTooLarge(f"callback body is over {limit} bytes")
    if not relay.signer.verify(job_id, token):
        raise Unauthorized("unknown job or invalid token")
    body = parse_object(raw, what="callback body")
    hint = body.get("id")
    task_hint = hint if isinstance(hint, str) and is_task_id(hint) else None
    return {"job_id": job_id, "task_id": task_hint, "source": "callback", "received_at": relay.clock()}


def accept_callbacks(relay: Relay, messages: Sequence[Mapping[str, Any]]) -> list[str | None]:
    """Queue, in one batch, each checked message whose job exists; its message id, or None for an unknown job."""
    stored = relay.jobs.existing({str(message["job_id"]) for message in messages})
    exists = [str(message["job_id"]) in stored for message in messages]
    known = [message for message, ok in zip(messages, exists, strict=True) if ok]
    sent = iter(relay.ingest_queue.send_batch(known) if known else [])
    return [next(sent) if ok else None for ok in exists]


def accept_callback(relay: Relay, job_id: str, token: str | None, raw: bytes) -> str:
    """Queue the job for ingestion; returns the queue message id."""
    (message_id,) = accept_callbacks(relay, [check_callback(relay, job_id, token, raw)])
    if message_id is None:
        raise Unauthorized("unknown job or invalid token")
    return message_id
