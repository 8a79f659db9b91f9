"""A storyboard's own job, once every shot is published: join the shots (with ``assemble``) and publish its event.

The storyboard's job waits for its shots like any job waits for the jobs it names
(:mod:`handlers.usecases.dependencies`). When the last shot is published it becomes ready and is admitted like
any other job; :func:`handlers.usecases.submit.send_to_provider` hands it here instead of to EvoLink: the relay is
its provider. :func:`run_storyboard` claims it (a conditional write, so one process runs it), joins the first
output of each shot in shot order into ``jobs/{job id}/output-0.mp4`` with :func:`handlers.media.assemble.assemble`
(packets copied where the shots match, re-encoded otherwise, and the output's ``media`` says which), stores its
poster and last frame beside it, records the output (with a ``duration`` check: the sum of the shots, within a
frame each) and publishes ``storyboard.completed``. Without ``assemble`` it publishes at once, with no output.
Keys are fixed, so a run that stopped half way is simply run again once its claim is stale.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers.app.relay import Relay
from handlers.base.errors import Conflict, DownloadFailed, NotFound, RelayError
from handlers.base.logs import get_logger
from handlers.domain.jobs import Job, JobStatus, Outcome, Output
from handlers.domain.storyboards import STORYBOARD_MODEL
from handlers.usecases.outcomes import conclude, publish_outcome

if TYPE_CHECKING:
    from handlers.media.assemble import Assembly

__all__ = ["ASSEMBLY_LEASE", "ASSEMBLY_MESSAGE", "is_storyboard_job", "run_assembly", "run_storyboard"]

log = get_logger(__name__)
ASSEMBLY_LEASE = 900.0  # seconds a claimed run may take before another process runs it again
_CHUNK = 1024 * 1024
_WRITE_ATTEMPTS = 5


def is_storyboard_job(job: Job) -> bool:
    """Whether ``job`` is a storyboard's own job (its provider is the relay)."""
    return job.model == STORYBOARD_MODEL and job.storyboard is not None and job.shot is None


ASSEMBLY_MESSAGE = "assembly"
"""The ``source`` of the ingest message that asks a worker to run a ready storyboard job: the join needs the CPU
and the PyAV an ingest worker has (on Lambda, the function with the media layer and the most memory)."""


def run_assembly(relay: Relay, job_id: str) -> Job:
    """Run the storyboard job ``job_id`` if it is still ready to run (a repeated message finds it done or claimed)."""
    job = relay.jobs.get(job_id)
    if not is_storyboard_job(job) or job.outcome is not None or job.status is not JobStatus.ACCEPTED:
        return job
    return run_storyboard(relay, job)


def run_storyboard(relay: Relay, job: Job) -> Job:
    """Run a ready storyboard job to its event (see the module); a run claimed elsewhere is left alone."""
    now = relay.clock()
    if job.submit_claimed_at is not None and now - job.submit_claimed_at < ASSEMBLY_LEASE:
        return job
    try:  # the claim also keeps the reconciler away until the lease is over
        job = relay.jobs.update(job.claimed(now).rescheduled(now, now + ASSEMBLY_LEASE))
    except Conflict:
        return relay.jobs.get(job.id)
    try:
        outputs = (_assembled(relay, job),) if job.request.get("assemble") else ()
    except ImportError:  # a runtime without PyAV (the Lambda layer leaves it out)
        message = "the shots cannot be joined here: PyAV is not installed where this storyboard ran"
        log.warning("storyboard.assembly_failed", job_id=job.id, storyboard=job.storyboard, error=message)
        return conclude(relay, job, Outcome.FAILED, {"code": "assembly_failed", "message": message})
    except (DownloadFailed, NotFound, ValueError) as exc:
        message = exc.message if isinstance(exc, RelayError) else str(exc)
        log.warning("storyboard.assembly_failed", job_id=job.id, storyboard=job.storyboard, error=message)
        return conclude(relay, job, Outcome.FAILED, {"code": "assembly_failed", "message": message})
    job = _owned(relay, job, lambda current: current.submitted(
        relay.clock(), f"relay-storyboard-{job.id}", estimated_time=None, credits_reserved=0.0,
        check_at=relay.clock() + ASSEMBLY_LEASE))
    job = _owned(relay, job, lambda current: current.stored(relay.clock(), outputs, credits_used=0.0))
    return publish_outcome(relay, job)


def _owned(relay: Relay, job: Job, move: Callable[[Job], Job]) -> Job:
    """Apply ``move`` to the job this run claimed, again on the job as it now is when another writer bumped its
    version meanwhile (a reconciler pass); ``Conflict`` if the claim is no longer this run's."""
    claim = job.submit_claimed_at
    for _ in range(_WRITE_ATTEMPTS):
        try:
            return relay.jobs.update(move(job))
        except Conflict:
            job = relay.jobs.get(job.id)
            if job.submit_claimed_at != claim:
                break
    raise Conflict(f"storyboard job {job.id} was taken over by another run")


def _shot_outputs(relay: Relay, job: Job) -> list[Output]:
    """The first output of each shot's job, in shot order."""
    outputs = []
    for shot in job.request.get("shots") or []:
        shot_job = relay.jobs.get(str(shot["job_id"]))
        if not shot_job.outputs:
            raise NotFound(f"shot {shot['id']} (job {shot_job.id}) has no output to assemble")
        outputs.append(shot_job.outputs[0])
    return outputs


def _assembled(relay: Relay, job: Job) -> Output:
    from handlers.media.assemble import assemble
    from handlers.media.frames import extract_frames
    from handlers.media.ranged import blob_source

    parts = _shot_outputs(relay, job)
    with tempfile.TemporaryDirectory(prefix="storyboard-") as folder:
        target = Path(folder) / "assembled.mp4"
        assembly = assemble([blob_source(relay.blobs, part.key, part.size) for part in parts], target)
        key = f"jobs/{job.id}/output-0.mp4"
        with target.open("rb") as file:
            stored = relay.blobs.put_stream(key, _chunks(file), content_type="video/mp4",
                                            metadata={"job_id": job.id, "source": "assembly"})
        output = Output(uri=stored.uri, key=stored.key, size=stored.size, sha256=stored.sha256,
                        content_type="video/mp4")
        pictures = extract_frames(target).pictures()
    frames = {role: relay.blobs.put_stream(output.frame_key(role), [data], content_type="image/jpeg",
                                           metadata={"job_id": job.id}).uri for role, data in pictures.items()}
    log.info("storyboard.assembled", job_id=job.id, storyboard=job.storyboard, method=assembly.method,
             reason=assembly.reason, duration=assembly.facts.duration, shots=len(parts))
    return Output(uri=output.uri, key=output.key, size=output.size, sha256=output.sha256,
                  content_type=output.content_type, media=_media(assembly), checks=(_duration_check(assembly),),
                  frames=frames)


def _media(assembly: Assembly) -> dict[str, Any]:
    return {**assembly.facts.as_dict(), "assembly": {"method": assembly.method, "reason": assembly.reason,
                                                     "parts": len(assembly.parts)}}


def _duration_check(assembly: Assembly) -> dict[str, Any]:
    """The joined video lasts the sum of its parts, within one frame per part."""
    expected = sum(part.duration for part in assembly.parts)
    tolerance = sum(part.frame_seconds for part in assembly.parts) or 0.1
    actual = assembly.facts.duration
    return {"name": "duration", "ok": abs(actual - expected) <= tolerance + 1e-6,
            "expected": round(expected, 3), "actual": round(actual, 3)}


def _chunks(file: Any) -> Iterator[bytes]:
    while chunk := file.read(_CHUNK):
        yield chunk
