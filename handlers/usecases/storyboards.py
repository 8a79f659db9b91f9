"""Storyboards: create every shot at once, show where each is, rerun one shot, and say what it all costs.

Where a storyboard is kept: nowhere but in jobs. Each revision is one job of its own (model ``storyboard``,
:mod:`handlers.usecases.assembly`) whose request holds the revision (its shots, each shot's job id, whether to
assemble) and whose ``depends_on`` lists the shots' jobs; its id is derived from the storyboard id and the
revision number. So the record gets the job store's conditional writes on both backends for free: creating
revision ``n`` is an insert-if-absent, and two reruns that race for the same revision cannot both win (the
loser's request differs, and it is answered ``409`` before it creates any job). Reading a storyboard is one
batched look-up of its possible revision ids and reads of the jobs of the newest.

Every shot is submitted at once, in order, as an ordinary job of the caller's tenant: ``shot://`` references
become ``job://`` references to the earlier shots' jobs, so a shot whose references are not published yet
waits, and the others run in parallel within the concurrency limits. Each shot holds its own estimate of the
budget, as any job does; the storyboard's cost is the sum of its shots'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handlers.app.relay import Relay
from handlers.base.errors import BudgetExceeded, Conflict, InvalidRequest, NotFound, Violation
from handlers.base.logs import get_logger
from handlers.domain.budgets import period_of, period_resets_at
from handlers.domain.contract import VIDEO
from handlers.domain.jobs import Job, JobStatus, Outcome, derive_job_id, request_fingerprint, rfc3339
from handlers.domain.pricing import estimate
from handlers.domain.storyboards import (
    MAX_REVISIONS,
    STORYBOARD_MODEL,
    StoryboardSpec,
    affected_shots,
    parse_storyboard,
    storyboard_id,
    to_job_references,
)
from handlers.domain.tenancy import DEFAULT_TENANT
from handlers.provider.validation import check_request
from handlers.usecases.budget import budget_for, remaining
from handlers.usecases.dependencies import wait_for
from handlers.usecases.references import check_references
from handlers.usecases.submit import job_id_for, submit_job

__all__ = ["SHOT_SCOPE", "StoryboardEstimate", "create_storyboard", "estimate_storyboard", "rerun_shot",
           "revision_job_id", "show_storyboard"]

log = get_logger(__name__)
SHOT_SCOPE = "storyboard"


def revision_job_id(storyboard: str, revision: int) -> str:
    """The id of the job of revision ``revision`` (from 1) of ``storyboard``."""
    return derive_job_id(f"storyboard/{storyboard}", f"revision-{revision}", "")


def _shot_key(storyboard: str, revision: int, shot: str) -> str:
    return f"{storyboard}:r{revision}:{shot}"


def _shot_job_id(tenant: str, storyboard: str, revision: int, shot: str) -> str:
    return job_id_for(tenant, SHOT_SCOPE, _shot_key(storyboard, revision, shot), "")


# --- checking a whole storyboard before anything is created ---------------------------------------

def _check_shots(relay: Relay, tenant: str, spec: StoryboardSpec, jobs: Mapping[str, str]) -> None:
    """Every problem of every shot's request, as the submitter would name it (prefixed ``shots[i].request.``)."""
    problems: list[Violation] = []
    durations = _durations(spec)
    for index, shot in enumerate(spec.shots):
        total = sum(length for length in _lengths(shot.request, durations) if length is not None)
        if total > VIDEO.max_total_seconds:
            problems.append(Violation(f"shots[{index}].request.video_urls", "total_duration_exceeded",
                                      f"shots[{index}] names {total:g} s of earlier shots' video; the limit is "
                                      f"{VIDEO.max_total_seconds:g} s of reference video in total"))
        request = to_job_references(shot.request, jobs)
        try:
            check_request(request, allow_http=relay.settings.uses_sandbox, callback="forbidden", references=True)
            external = {k: v for k, v in request.items() if k in ("image_urls", "video_urls")}
            _check_external(relay, tenant, external, set(jobs.values()))
        except InvalidRequest as exc:
            problems += _in_shot(index, exc)
    if problems:
        raise InvalidRequest(problems)


def _in_shot(index: int, exc: InvalidRequest) -> list[Violation]:
    """``exc``'s violations of shot ``index``'s request, each field named from the storyboard's body."""
    return [Violation(f"shots[{index}].request.{v.field}", v.code, v.message) for v in exc.violations]


def _check_external(relay: Relay, tenant: str, arrays: Mapping[str, Any], own: set[str]) -> None:
    """``job://`` references to jobs outside the storyboard must name the tenant's jobs that may still publish."""
    outside = {name: [u for u in urls if not any(job in str(u) for job in own)]
               for name, urls in arrays.items() if isinstance(urls, list)}
    check_references(relay, tenant, outside)


@dataclass(frozen=True, slots=True)
class StoryboardEstimate:
    """What each shot should cost (``{shot id: credits}``) and the sum."""

    shots: dict[str, float]

    @property
    def credits(self) -> float:
        return round(sum(self.shots.values()), 2)

    def as_dict(self) -> dict[str, Any]:
        return {"credits": self.credits, "shots": [{"id": k, "credits": v} for k, v in self.shots.items()]}


def _durations(spec: StoryboardSpec) -> dict[str, float]:
    """The duration each shot asks for (EvoLink's default, 5 s, where it asks for none or for no number)."""
    found = {s.id: s.request.get("duration", 5) for s in spec.shots}
    return {k: float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 5.0 for k, v in found.items()}


def _lengths(request: Mapping[str, Any], durations: Mapping[str, float]) -> list[float | None]:
    """Each reference video's length: a shot's output counts at the duration its shot asks for."""
    return [durations.get(str(url).removeprefix("shot://").split("/", 1)[0]) if str(url).startswith("shot://")
            else None for url in request.get("video_urls") or []]


def estimate_storyboard(relay: Relay, spec: StoryboardSpec, shots: list[str] | None = None, *,
                        tenant: str = DEFAULT_TENANT, checked: bool = False) -> StoryboardEstimate:
    """What the storyboard's shots (or only ``shots``) should cost ``tenant``, each shot as the estimator prices a
    job: another shot's output at the duration that shot asks for, an earlier job of the tenant's (``job://``) at
    its video's real length as a submit counts it, other reference videos at the worst case. A ``job://``
    reference a submit would refuse is ``InvalidRequest``, naming the shot's field (``shots[i].request.…``).

    Unless the caller ``checked`` them already, every shot's request is first checked as creating the storyboard
    checks it, so an estimate never prices a request the relay would refuse."""
    if not checked:
        _check_shots(relay, tenant, spec, {s.id: _shot_job_id(tenant, "estimate", 1, s.id) for s in spec.shots})
    durations = _durations(spec)
    wanted = shots if shots is not None else [s.id for s in spec.shots]
    credits: dict[str, float] = {}
    problems: list[Violation] = []
    for index, shot in enumerate(spec.shots):
        if shot.id not in wanted:
            continue
        try:
            known = check_references(relay, tenant, shot.request).video_seconds()
        except InvalidRequest as exc:
            problems += _in_shot(index, exc)
            continue
        lengths = [known.get(i, length) for i, length in enumerate(_lengths(shot.request, durations))]
        credits[shot.id] = estimate(shot.request, lengths, relay.prices).credits
    if problems:
        raise InvalidRequest(problems)
    return StoryboardEstimate(credits)


def _check_budget(relay: Relay, tenant: str, cost: StoryboardEstimate) -> None:
    """Refuse up front a storyboard whose shots together need more than the tenant's budget has left (each shot
    still holds its own share when it is submitted)."""
    budget = budget_for(tenant, relay.settings.budgets, relay.ledger)
    if budget is None:
        return
    period = period_of(relay.clock(), budget.per)
    usage = relay.ledger.usage(tenant, period)
    left = remaining(budget, usage.held, usage.spent)
    if cost.credits > left:
        raise BudgetExceeded(f"tenant {tenant!r} has {left:g} of its {budget} credit budget left and this "
                             f"storyboard's shots need an estimated {cost.credits:g} together",
                             tenant=tenant, budget=budget.credits, remaining=left,
                             resets_at=rfc3339(period_resets_at(period)))


# --- creating a revision --------------------------------------------------------------------------

def _revision_job(relay: Relay, tenant: str, storyboard: str, revision: int, spec: StoryboardSpec,
                  jobs: Mapping[str, str], rerun: str | None) -> Job:
    request = {"storyboard": storyboard, "revision": revision, "assemble": spec.assemble, "rerun": rerun,
               "metadata": dict(spec.metadata),
               "shots": [{"id": s.id, "job_id": jobs[s.id], "request": dict(s.request), "metadata": dict(s.metadata)}
                         for s in spec.shots]}
    now = relay.clock()
    fresh = Job(id=revision_job_id(storyboard, revision), request=request,
                fingerprint=request_fingerprint(request, {}), created_at=now, updated_at=now, tenant=tenant,
                model=STORYBOARD_MODEL, storyboard=storyboard, check_at=now + relay.settings.reconcile_grace)
    fresh = fresh.waited(now, tuple(jobs[s.id] for s in spec.shots), now + relay.settings.reconcile_grace)
    job = relay.jobs.create(fresh)
    if job.fingerprint != fresh.fingerprint:
        raise Conflict(f"storyboard {storyboard} revision {revision} was made by another request at the same "
                       "time; read the storyboard and try again", code="storyboard_changed")
    return job


def _run_revision(relay: Relay, tenant: str, spec: StoryboardSpec, revision_job: Job, new: list[str]) -> None:
    """Submit the ``new`` shots in order (the others keep their jobs), then let the revision's job wait."""
    jobs = {str(s["job_id"]) for s in revision_job.request["shots"]}
    mapping = {str(s["id"]): str(s["job_id"]) for s in revision_job.request["shots"]}
    storyboard, revision = str(revision_job.storyboard), int(revision_job.request["revision"])
    for shot in spec.shots:
        if shot.id not in new:
            continue
        submitted = submit_job(relay, to_job_references(shot.request, mapping), metadata=shot.metadata,
                               idempotency_key=_shot_key(storyboard, revision, shot.id), scope=SHOT_SCOPE,
                               tenant=tenant, storyboard=storyboard, shot=shot.id).job
        assert submitted.id in jobs, "a shot's job id is derived from its key alone"
    wait_for(relay, relay.jobs.get(revision_job.id))


def create_storyboard(relay: Relay, body: object, *, tenant: str = DEFAULT_TENANT,
                      idempotency_key: str | None = None) -> dict[str, Any]:
    """Check every shot, then create the storyboard's first revision and submit every shot (see the module).
    A repeat of the same submission (same ``idempotency_key``, else same body) finds it again."""
    spec = parse_storyboard(body)
    storyboard = storyboard_id(tenant, idempotency_key, spec)
    jobs = {s.id: _shot_job_id(tenant, storyboard, 1, s.id) for s in spec.shots}
    _check_shots(relay, tenant, spec, jobs)
    if not relay.jobs.existing([revision_job_id(storyboard, 1)]):
        _check_budget(relay, tenant, estimate_storyboard(relay, spec, tenant=tenant, checked=True))
    revision_job = _revision_job(relay, tenant, storyboard, 1, spec, jobs, None)
    _run_revision(relay, tenant, spec, revision_job, [s.id for s in spec.shots])
    log.info("storyboard.created", storyboard=storyboard, shots=len(spec.shots), assemble=spec.assemble)
    return show_storyboard(relay, storyboard, tenant=tenant)


def rerun_shot(relay: Relay, storyboard: str, shot: str, *, tenant: str | None) -> dict[str, Any]:
    """The next revision: new jobs for ``shot`` and every shot naming it (directly or not), the other shots' jobs
    kept (they are not paid again), and the revision's own job that joins them again."""
    latest = _latest(relay, storyboard, tenant)
    spec = _spec_of(latest)
    if shot not in {s.id for s in spec.shots}:
        known = ", ".join(s.id for s in spec.shots)
        raise NotFound(f"storyboard {storyboard} has no shot {shot!r}; its shots: {known}")
    revision = int(latest.request["revision"]) + 1
    if revision > MAX_REVISIONS:
        raise Conflict(f"storyboard {storyboard} has {MAX_REVISIONS} revisions, the most it may have; "
                       "submit a new storyboard", code="too_many_revisions")
    new = affected_shots(spec, shot)
    kept = {str(s["id"]): str(s["job_id"]) for s in latest.request["shots"]}
    jobs = {s.id: _shot_job_id(latest.tenant, storyboard, revision, s.id) if s.id in new else kept[s.id]
            for s in spec.shots}
    _check_budget(relay, latest.tenant, estimate_storyboard(relay, spec, new, tenant=latest.tenant))
    revision_job = _revision_job(relay, latest.tenant, storyboard, revision, spec, jobs, shot)
    _run_revision(relay, latest.tenant, spec, revision_job, new)
    log.info("storyboard.rerun", storyboard=storyboard, shot=shot, revision=revision, new_jobs=new)
    return show_storyboard(relay, storyboard, tenant=tenant)


# --- reading --------------------------------------------------------------------------------------

def _spec_of(job: Job) -> StoryboardSpec:
    return parse_storyboard({"shots": [{"id": s["id"], "request": s["request"], "metadata": s.get("metadata", {})}
                                       for s in job.request["shots"]],
                             "assemble": job.request.get("assemble", False),
                             "metadata": job.request.get("metadata", {})})


def _latest(relay: Relay, storyboard: str, tenant: str | None) -> Job:
    """The job of the newest revision; ``NotFound`` if there is none, or it is another tenant's (``tenant``
    ``None``: an administrator, who sees every tenant's)."""
    ids = [revision_job_id(storyboard, n) for n in range(1, MAX_REVISIONS + 1)]
    found = relay.jobs.existing(ids)
    newest = next((job_id for job_id in reversed(ids) if job_id in found), None)
    job = relay.jobs.get(newest) if newest is not None else None
    if job is None or (tenant is not None and job.tenant != tenant):
        raise NotFound(f"no storyboard {storyboard!r}")
    return job


def _status(revision: Job, shots: list[Job | None]) -> str:
    """``completed`` once the revision's job is published; ``failed`` once its failure is decided (its error says
    why, and its event is out or on its way); ``completing`` while a finished revision's event goes out."""
    if revision.status is JobStatus.PUBLISHED:
        return "completed"
    if revision.terminal or (revision.outcome is not None and revision.outcome is not Outcome.COMPLETED):
        return "failed"
    if revision.outcome is Outcome.COMPLETED:
        return "completing"  # joined and stored; the storyboard.completed event is being published
    if all(job is not None and job.status is JobStatus.PUBLISHED for job in shots):
        return "assembling" if revision.request.get("assemble") else "completing"
    return "running"


def _shot_view(row: Mapping[str, Any], job: Job | None) -> dict[str, Any]:
    view: dict[str, Any] = {"id": row["id"], "job_id": row["job_id"]}
    if job is None:
        return {**view, "status": "missing"}
    public = job.public()
    return {**view, "status": public["status"], "progress": public["progress"], "credits": public["credits"],
            "error": public["error"], "outputs": public["outputs"], "depends_on": public["depends_on"]}


def _get(relay: Relay, job_id: str) -> Job | None:
    try:
        return relay.jobs.get(job_id)
    except NotFound:
        return None


def show_storyboard(relay: Relay, storyboard: str, *, tenant: str | None) -> dict[str, Any]:
    """The storyboard as the API shows it: its newest revision, each shot's job, the joined output, the cost."""
    revision = _latest(relay, storyboard, tenant)
    rows = list(revision.request["shots"])
    shots = [_get(relay, str(row["job_id"])) for row in rows]
    public = revision.public()
    estimated = sum(job.credits_estimated or 0.0 for job in shots if job is not None)
    used = sum(job.credits_used or 0.0 for job in shots if job is not None)
    return {
        "id": storyboard, "revision": revision.request["revision"], "status": _status(revision, shots),
        "job_id": revision.id, "tenant": revision.tenant, "assemble": bool(revision.request.get("assemble")),
        "rerun": revision.request.get("rerun"), "metadata": dict(revision.request.get("metadata") or {}),
        "shots": [_shot_view(row, job) for row, job in zip(rows, shots, strict=True)],
        "outputs": public["outputs"], "error": public["error"], "event_ids": public["event_ids"],
        "credits": {"estimated": round(estimated, 2), "used": round(used, 2)},
        "created_at": public["created_at"], "finished_at": public["finished_at"],
    }
