"""One ingest message in, one disposition out: shared by the local worker and Lambda."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handlers.errors import Conflict, DownloadFailed, NotFound, RelayError
from handlers.logs import get_logger
from handlers.relay import Relay
from handlers.usecases.ingest import Busy, ingest

__all__ = ["Disposition", "handle_ingest_message"]

log = get_logger(__name__)
MAX_BACKOFF = 300.0


@dataclass(frozen=True, slots=True)
class Disposition:
    """``done`` → delete the message; otherwise make it visible again after ``delay``."""

    done: bool
    delay: float = 0.0
    reason: str = ""


def handle_ingest_message(relay: Relay, body: Mapping[str, Any], *, receive_count: int,
                          worker: str) -> Disposition:
    job_id = body.get("job_id")
    if not isinstance(job_id, str):
        log.error("ingest.bad_message", body=dict(body))
        return Disposition(done=True, reason="malformed message")
    hint = body.get("task_id") if isinstance(body.get("task_id"), str) else None
    try:
        job = ingest(relay, job_id, task_hint=hint, worker=worker)
    except NotFound:
        return Disposition(done=True, reason="job not found")
    except Busy as exc:
        return Disposition(done=False, delay=exc.delay, reason=exc.code)
    except Conflict:
        return Disposition(done=False, delay=0.5, reason="conflict")
    except (DownloadFailed, RelayError) as exc:
        delay = min(MAX_BACKOFF, 2.0 ** receive_count)
        log.warning("ingest.retry", job_id=job_id, code=exc.code, error=exc.message,
                    receive_count=receive_count, delay=delay)
        return Disposition(done=False, delay=delay, reason=exc.code)
    log.info("ingest.done", job_id=job_id, status=job.status.value, source=body.get("source"))
    return Disposition(done=True)
