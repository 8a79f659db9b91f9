"""Outputs of earlier jobs as references: ``job://JOB_ID/output-N``, ``job://JOB_ID/poster``, ``job://JOB_ID/last-frame``.

At submit, :func:`check_references` finds every job a request names and checks it: it exists, it is the caller
tenant's (another tenant's job answers exactly like a missing one), and it is published or may still be (not
failed, cancelled, rejected or expired). It also knows each referenced video's length, from the output's media
facts once it is stored or from the job's requested duration before, so the seed's limits (at most 15 s of
reference video in total) and the estimate count the referenced video as what it is.

When the job is sent to EvoLink, :func:`provider_request` replaces each reference with a short-lived URL EvoLink
can fetch: the store's presigned GET where it makes one (S3), otherwise a relay URL signed with the callback
keys (purpose ``job-file-url``, served by ``GET /v1/job-files/{key}``, :func:`check_job_file_url`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from handlers.app.relay import Relay
from handlers.base.errors import InvalidRequest, NotFound, RelayError, Violation
from handlers.domain.contract import DEFAULTS, IMAGE, VIDEO, MediaLimits
from handlers.domain.jobs import Job, JobStatus, Outcome, Output
from handlers.provider.validation_urls import JobReference, parse_job_reference

__all__ = [
    "JOB_FILE_URL",
    "NEVER_PUBLISHED",
    "ReferenceUnavailable",
    "Referenced",
    "References",
    "check_job_file_url",
    "check_references",
    "find_references",
    "job_file_url",
    "provider_request",
    "total_violations",
]

JOB_FILE_URL = b"job-file-url:"
NEVER_PUBLISHED = frozenset({JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.REJECTED, JobStatus.EXPIRED})
_FILE_KEY_PREFIX = "jobs/"
_KINDS: tuple[MediaLimits, ...] = (IMAGE, VIDEO)


class ReferenceUnavailable(RelayError):
    """A referenced job is published but lacks the file the reference names (no such output, no picture)."""

    code = "reference_unavailable"


@dataclass(frozen=True, slots=True)
class Referenced:
    """One reference of a request (``field``: ``video_urls[0]``), the job it names as it is now, and the length in
    seconds of the video it names (``None`` for a picture)."""

    field: str
    reference: JobReference
    job: Job
    seconds: float | None


@dataclass(frozen=True, slots=True)
class References:
    items: tuple[Referenced, ...] = ()

    @property
    def pending(self) -> tuple[str, ...]:
        """The ids of the referenced jobs not published yet, each once, in the request's order."""
        return tuple(dict.fromkeys(r.job.id for r in self.items if r.job.status is not JobStatus.PUBLISHED))

    def video_seconds(self) -> dict[int, float]:
        """``{index in video_urls: seconds}`` of the referenced videos."""
        return {int(r.field.removeprefix(f"{VIDEO.array}[").rstrip("]")): r.seconds
                for r in self.items if r.seconds is not None and r.field.startswith(VIDEO.array)}


def find_references(request: Mapping[str, Any]) -> Iterator[tuple[str, JobReference]]:
    """``(field, reference)`` for each ``job://`` reference in ``image_urls`` and ``video_urls``."""
    for limits in _KINDS:
        urls = request.get(limits.array)
        for index, url in enumerate(urls if isinstance(urls, list) else []):
            reference = parse_job_reference(url) if isinstance(url, str) else None
            if reference is not None:
                yield f"{limits.array}[{index}]", reference


_DEFAULT = DEFAULTS["duration"]
_DEFAULT_SECONDS = float(_DEFAULT) if isinstance(_DEFAULT, int) else 5.0  # EvoLink's default duration


def _requested_seconds(job: Job) -> float:
    duration = job.request.get("duration")
    return float(duration) if isinstance(duration, int | float) and not isinstance(duration, bool) else _DEFAULT_SECONDS


def _media_seconds(output: Output | None) -> float | None:
    media = getattr(output, "media", None)
    duration = media.get("duration") if isinstance(media, Mapping) else None
    return float(duration) if isinstance(duration, int | float) and not isinstance(duration, bool) else None


def _output(job: Job, reference: JobReference) -> Output | None:
    index = reference.output_index
    return job.outputs[index] if index < len(job.outputs) else None


def _seconds(job: Job, reference: JobReference) -> float | None:
    if reference.is_frame:
        return None
    return _media_seconds(_output(job, reference)) or _requested_seconds(job)


def _find(relay: Relay, tenant: str, job_id: str) -> Job | None:
    try:
        job = relay.jobs.get(job_id)
    except NotFound:
        return None
    return job if job.tenant == tenant else None  # another tenant's job is a missing one


def _problem(field: str, reference: JobReference, job: Job | None) -> Violation | None:
    if job is None:
        return Violation(field, "unknown_reference",
                         f"{field} names job {reference.job_id}, which does not exist (jobs of your tenant only)")
    if job.status in NEVER_PUBLISHED or job.outcome not in (None, Outcome.COMPLETED):
        code = (job.error or {}).get("code") or (job.outcome or job.status)
        return Violation(field, "reference_failed",
                         f"{field} names job {job.id}, which ended {job.status.value if job.terminal else job.outcome}"
                         f" ({code}) and will never be published")
    if job.status is JobStatus.PUBLISHED:
        try:
            _output_of(job, reference)
        except ReferenceUnavailable as exc:
            return Violation(field, "reference_unavailable", f"{field}: {exc.message}")
    return None


def check_references(relay: Relay, tenant: str, request: Mapping[str, Any]) -> References:
    """Every ``job://`` reference of ``request`` and the job it names; ``InvalidRequest`` naming each reference to a
    job that does not exist for ``tenant``, will never be published, or lacks the file it names."""
    found: list[Referenced] = []
    problems: list[Violation] = []
    jobs: dict[str, Job | None] = {}
    for field, reference in find_references(request):
        if reference.job_id not in jobs:
            jobs[reference.job_id] = _find(relay, tenant, reference.job_id)
        job = jobs[reference.job_id]
        problem = _problem(field, reference, job)
        if problem is not None:
            problems.append(problem)
        elif job is not None:
            found.append(Referenced(field, reference, job, _seconds(job, reference)))
    if problems:
        raise InvalidRequest(problems)
    return References(tuple(found))


def total_violations(lengths: Sequence[float | None], references: References) -> list[Violation]:
    """The seed's total of reference video seconds, counting each video whose length is known (a referenced
    output's included): more than 15 s in all is refused, and the message says which part is referenced."""
    total = sum(length for length in lengths if length is not None)
    if total <= VIDEO.max_total_seconds + 1e-6:
        return []
    referenced = sum(references.video_seconds().values())
    detail = f" ({referenced:g} s of them from earlier jobs' outputs)" if referenced else ""
    return [Violation(VIDEO.array, "total_duration_exceeded",
                      f"video references last {total:g} s in total{detail}; the limit is "
                      f"{VIDEO.max_total_seconds:g} s")]


# --- files of published jobs, for EvoLink ---------------------------------------------------------

def _output_of(job: Job, reference: JobReference) -> Output:
    output = _output(job, reference)
    if output is None:
        raise ReferenceUnavailable(f"job {job.id} has {len(job.outputs)} output(s); "
                                   f"{reference.part} is not one of them")
    return output


def _file_key(relay: Relay, job: Job, reference: JobReference) -> str:
    """The key of the file ``reference`` names; a picture the copy did not store (an output copied where PyAV
    was missing, or before pictures were kept) is taken from the video now and stored where it belongs."""
    output = _output_of(job, reference)
    if not reference.is_frame:
        return output.key
    key = output.frame_key(reference.part)
    if reference.part not in (output.frames or {}) and relay.blobs.head(key) is None:
        _store_pictures(relay, job, output)
    return key


def _store_pictures(relay: Relay, job: Job, output: Output) -> None:
    try:
        from handlers.media.frames import extract_frames
        from handlers.media.ranged import blob_source
    except ImportError as exc:  # the Lambda layer leaves PyAV out
        raise ReferenceUnavailable(f"job {job.id} has no stored pictures, and they cannot be made here") from exc
    try:
        pictures = extract_frames(blob_source(relay.blobs, output.key, output.size)).pictures()
    except RelayError as exc:
        raise ReferenceUnavailable(f"job {job.id}'s video cannot be read for its pictures: {exc.message}") from exc
    for role, data in pictures.items():
        relay.blobs.put_stream(output.frame_key(role), [data], content_type="image/jpeg",
                               metadata={"job_id": job.id, "source": "reference"})


def job_file_url(relay: Relay, key: str, *, ttl: int) -> str:
    """A URL that GETs ``key`` for ``ttl`` seconds: presigned by the store, or a signed relay URL."""
    presigned = relay.blobs.presign(key, ttl)
    if presigned is not None:
        return presigned
    expires = int(relay.clock()) + ttl
    name = key.removeprefix(_FILE_KEY_PREFIX)
    token = relay.signer.sign(f"{name}:{expires}", purpose=JOB_FILE_URL)
    return f"{relay.callback_base}/v1/job-files/{name}?{urlencode({'expires': expires, 'sig': token})}"


def check_job_file_url(relay: Relay, name: str, expires: str, signature: str) -> str:
    """The blob key behind a signed ``/v1/job-files/{name}`` URL; ``NotFound`` when forged or expired (the same
    answer for both)."""
    valid = relay.signer.verify(f"{name}:{expires}", signature, purpose=JOB_FILE_URL)
    if not valid or not expires.isdigit() or int(expires) < relay.clock() or ".." in name.split("/"):
        raise NotFound("no such file, or its link expired")
    return _FILE_KEY_PREFIX + name


def provider_request(relay: Relay, job: Job) -> dict[str, Any]:
    """The job's request as EvoLink gets it: every ``job://`` reference replaced by a short-lived URL of the file
    (``ReferenceUnavailable`` if a referenced job has no such file; ``NotFound`` if it is gone)."""
    body = dict(job.request)
    ttl = int(relay.settings.upload_url_ttl)
    for limits in _KINDS:
        urls = body.get(limits.array)
        if not isinstance(urls, list) or not any(isinstance(u, str) and parse_job_reference(u) for u in urls):
            continue
        body[limits.array] = [_resolved(relay, url, ttl) for url in urls]
    return body


def _resolved(relay: Relay, url: object, ttl: int) -> object:
    reference = parse_job_reference(url) if isinstance(url, str) else None
    if reference is None:
        return url
    return job_file_url(relay, _file_key(relay, relay.jobs.get(reference.job_id), reference), ttl=ttl)
