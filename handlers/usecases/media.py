"""Describe the copied outputs: what each video is, how it compares with its request, and its pictures.

After :func:`~handlers.usecases.copy.copy_results` has stored a job's videos, :func:`describe_outputs` reads
each one where it is kept (its file, or byte ranges of its object: the container index and the frames it
decodes, never the whole video), checks the facts against the request, stores the poster and last frame
(with their thumbnails) beside it as JPEG, and records all three on the output and in the manifest:

* ``media``: :class:`~handlers.media.facts.MediaFacts` as a mapping;
* ``checks``: ``{name, ok, expected, actual}`` for each check of :mod:`handlers.media.checks`;
* ``frames``: role → URI of ``poster``, ``poster-thumbnail``, ``last-frame``, ``last-frame-thumbnail``
  (keys from :meth:`handlers.domain.jobs.Output.frame_key`).

A video that is not a playable MP4 is a failed copy: noted (:func:`~handlers.usecases.copy.note_unplayable`)
so that the next attempt downloads it again, retried, and after :data:`UNPLAYABLE_ATTEMPTS` attempts the job
fails with ``unplayable_output``. A failed check does not fail the job unless ``RELAY_OUTPUT_CHECKS=strict``:
then it fails with ``output_mismatch``, naming the checks.

A ``serve`` process on a local folder reads each video in a child process
(:class:`~handlers.media.processes.MediaProcesses`, ``RELAY_MEDIA_PROCESSES``), so the media step runs on more than
one core; objects in S3 are read in the calling thread.

Where PyAV is not installed (the Lambda layer leaves it out), nothing is decoded: each video's first bytes
are still checked to be an MP4, and the outputs are kept without ``media``, ``checks`` or ``frames``.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from handlers.app.relay import Relay
from handlers.base.errors import DownloadFailed
from handlers.base.logs import get_logger
from handlers.domain.jobs import Job, Output
from handlers.domain.sniff import SNIFF_BYTES, sniff
from handlers.media.checks import Check, check_facts, failed
from handlers.media.facts import UnplayableOutput
from handlers.media.frames import describe_file
from handlers.media.ranged import blob_source
from handlers.usecases.copy import failed_copy, note_unplayable, under_lease

__all__ = [
    "STRICT",
    "UNPLAYABLE_ATTEMPTS",
    "OutputMismatch",
    "describe_outputs",
    "manifest_key",
    "media_reader_available",
    "write_manifest",
]

log = get_logger(__name__)
UNPLAYABLE_ATTEMPTS = 3
"""Copies of one output found unplayable before the job fails with ``unplayable_output``."""
STRICT = "strict"
_MP4_TYPES = frozenset({"video/mp4", "video/quicktime"})


class OutputMismatch(DownloadFailed):
    """``RELAY_OUTPUT_CHECKS=strict`` and a stored video failed a check: the job fails."""

    code = "output_mismatch"

    def __init__(self, index: int, checks: tuple[Check, ...]) -> None:
        names = ", ".join(failed(checks))
        super().__init__(f"output {index} does not match the request: {names}", permanent=True, code=self.code)
        self.index, self.checks = index, checks

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "output": self.index, "checks": [check.as_dict() for check in self.checks]}


def manifest_key(job_id: str) -> str:
    return f"jobs/{job_id}/manifest.json"


def media_reader_available() -> bool:
    """Whether PyAV and Pillow are installed here."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("av", "PIL"))
    except ImportError:  # an import hook that refuses them
        return False


def describe_outputs(relay: Relay, job: Job, outputs: tuple[Output, ...], worker: str, *,
                     report: Mapping[str, Any] | None = None) -> tuple[Job, tuple[Output, ...] | DownloadFailed]:
    """Describe each output under the job's lease (renewed while it runs), as the module says.

    Returns the job and the described outputs, or the failure that fails the job (``unplayable_output`` after
    the last attempt, ``output_mismatch`` in strict mode). An unplayable copy with attempts left, or a store
    that failed, releases the lease and raises.
    """
    job, described = under_lease(relay, job, worker, lambda: tuple(
        _describe(relay, job, index, output) for index, output in enumerate(outputs)))
    if not isinstance(described, tuple):
        return job, described
    mismatch = _mismatch(relay, described)
    if mismatch is not None:
        return failed_copy(relay, job, mismatch)
    write_manifest(relay, job, described, report or {})
    return job, described


# --- one output ----------------------------------------------------------------------------------

def _describe(relay: Relay, job: Job, index: int, output: Output) -> Output:
    try:
        if not media_reader_available():
            log.warning("job.output_not_read", job_id=job.id, key=output.key,
                        reason="PyAV and Pillow are not installed here: no media facts, checks or pictures")
            _sniff(relay, output)
            return output
        return _read(relay, job, output)
    except UnplayableOutput as exc:
        attempts = note_unplayable(relay, job, index, output, exc.message)
        last = attempts >= UNPLAYABLE_ATTEMPTS
        log.warning("job.output_unplayable", job_id=job.id, output=index, reason=exc.message, attempts=attempts,
                    final=last)
        raise UnplayableOutput(f"output {index} is not a playable MP4 ({exc.message}); {attempts} of "
                               f"{UNPLAYABLE_ATTEMPTS} copies tried", permanent=last) from exc


def _read(relay: Relay, job: Job, output: Output) -> Output:
    source = blob_source(relay.blobs, output.key, output.size)
    if isinstance(source, Path) and relay.media_processes is not None:
        facts, pictures = relay.media_processes.describe(source, output.size)
    else:
        facts, pictures = describe_file(source, output.size)
    checks = check_facts(facts, job.request)
    frames = {role: _store_picture(relay, job, output.frame_key(role), data) for role, data in pictures.items()}
    log.info("job.output_described", job_id=job.id, key=output.key, duration=facts.duration,
             size=f"{facts.width}x{facts.height}", failed_checks=failed(checks))
    return replace(output, media=facts.as_dict(), checks=tuple(c.as_dict() for c in checks), frames=frames)


def _store_picture(relay: Relay, job: Job, key: str, data: bytes) -> str:
    stored = relay.blobs.put_stream(key, [data], content_type="image/jpeg", metadata={"job_id": job.id},
                                    only_new=True)
    return stored.uri


def _sniff(relay: Relay, output: Output) -> None:
    """Without PyAV: the first bytes must at least be an MP4's."""
    found = sniff(relay.blobs.read_range(output.key, 0, SNIFF_BYTES))
    if found not in _MP4_TYPES:
        raise UnplayableOutput(f"its first bytes are {found or 'of no known type'}, not an MP4")


# --- the job -------------------------------------------------------------------------------------

def _mismatch(relay: Relay, outputs: tuple[Output, ...]) -> OutputMismatch | None:
    for index, output in enumerate(outputs):
        checks = tuple(Check(**check) for check in output.checks)
        if failed(checks):
            log.warning("job.output_mismatch", key=output.key, failed_checks=failed(checks),
                        strict=relay.settings.output_checks == STRICT)
            if relay.settings.output_checks == STRICT:
                return OutputMismatch(index, checks)
    return None


def write_manifest(relay: Relay, job: Job, outputs: tuple[Output, ...], report: Mapping[str, Any]) -> None:
    """The job's manifest beside its videos: the request, the task as EvoLink reported it, the described
    outputs and the times; written once (a repeat after a crash keeps the first)."""
    manifest: dict[str, Any] = {
        "job_id": job.id, "request": dict(job.request), "metadata": dict(job.metadata),
        "task": dict(report), "outputs": [output.as_dict() for output in outputs],
        "timings": {"created_at": job.created_at, "submitted_at": job.submitted_at, "stored_at": relay.clock()},
    }
    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
    relay.blobs.put_stream(manifest_key(job.id), [body], content_type="application/json", only_new=True)
