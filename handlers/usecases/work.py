"""One ingest message in, one disposition out: shared by the local worker and Lambda."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handlers.app.relay import Relay
from handlers.base.errors import Conflict, DownloadFailed, NotFound, RelayError
from handlers.base.logs import get_logger
from handlers.usecases.admission import ADMISSION_MESSAGE
from handlers.usecases.assembly import ASSEMBLY_MESSAGE, run_assembly
from handlers.usecases.ingest import Busy, ingest
from handlers.usecases.submit import admit_waiting

__all__ = ["Disposition", "handle_ingest_message"]

log = get_logger(__name__)
MAX_BACKOFF = 300.0


@dataclass(frozen=True, slots=True)
class Disposition:
    """``done`` → delete the message; otherwise make it visible again after ``delay`` seconds (``0``: at once).

    The local worker and the Lambda entry both hand it to :func:`handlers.ports.settle`.

    ``outcome`` is what the metrics count: ``done``, ``retry``, ``busy``, ``conflict`` or ``dropped``.
    """

    done: bool
    delay: float = 0.0
    reason: str = ""
    outcome: str = "done"


def handle_ingest_message(relay: Relay, body: Mapping[str, Any], *, receive_count: int,
                          worker: str) -> Disposition:
    disposition = _handle(relay, body, receive_count=receive_count, worker=worker)
    relay.metrics.ingest_attempt(disposition.outcome)
    return disposition


def _callback_at(relay: Relay, body: Mapping[str, Any]) -> float | None:
    """When the callback behind this message came (``None`` for the reconciler's messages)."""
    if body.get("source") != "callback":
        return None
    received = body.get("received_at")
    return float(received) if isinstance(received, int | float) else relay.clock()


def _handle(relay: Relay, body: Mapping[str, Any], *, receive_count: int, worker: str) -> Disposition:
    if body.get("source") == ADMISSION_MESSAGE:  # a slot freed: admit queued jobs in their fair order
        try:
            admitted = admit_waiting(relay)
        except RelayError as exc:
            return Disposition(done=False, delay=min(MAX_BACKOFF, 2.0 ** receive_count), reason=exc.code,
                               outcome="retry")
        log.info("admission.done", admitted=admitted)
        return Disposition(done=True)
    job_id = body.get("job_id")
    if not isinstance(job_id, str):
        log.error("ingest.bad_message", body=dict(body))
        return Disposition(done=True, reason="malformed message", outcome="dropped")
    if body.get("source") == ASSEMBLY_MESSAGE:
        return _assemble(relay, job_id, receive_count)
    hint = body.get("task_id") if isinstance(body.get("task_id"), str) else None
    try:
        job = ingest(relay, job_id, task_hint=hint, worker=worker, callback_at=_callback_at(relay, body))
    except NotFound:
        return Disposition(done=True, reason="job not found", outcome="dropped")
    except Busy as exc:
        return Disposition(done=False, delay=exc.delay, reason=exc.code, outcome="busy")
    except Conflict:
        return Disposition(done=False, delay=0.5, reason="conflict", outcome="conflict")
    except (DownloadFailed, RelayError) as exc:
        delay = min(MAX_BACKOFF, 2.0 ** receive_count)
        log.warning("ingest.retry", job_id=job_id, code=exc.code, error=exc.message,
                    receive_count=receive_count, delay=delay)
        relay.metrics.ingest_failure(exc.code)
        return Disposition(done=False, delay=delay, reason=exc.code, outcome="retry")
    log.debug("ingest.done", job_id=job_id, status=job.status.value, source=body.get("source"))
    return Disposition(done=True)


def _assemble(relay: Relay, job_id: str, receive_count: int) -> Disposition:
    try:
        run_assembly(relay, job_id)
    except NotFound:
        return Disposition(done=True, reason="job not found", outcome="dropped")
    except RelayError as exc:
        log.warning("assembly.retry", job_id=job_id, code=exc.code, error=exc.message, receive_count=receive_count)
        return Disposition(done=False, delay=min(MAX_BACKOFF, 2.0 ** receive_count), reason=exc.code, outcome="retry")
    return Disposition(done=True)
