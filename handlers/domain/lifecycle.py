"""The job's life: its statuses, its outcomes and the one table of moves between them.

``status`` says where a job is. ``outcome`` says how it ended; it is recorded first (``stored``
for ``completed``, ``concluded`` for the others) while the status stays, and publishing the
outcome's one event then moves the job to its final status. So a job that reads as final
always has its event out, and a crash in between leaves it for the reconciler.

``MOVES`` is the whole story: each row names a transition (the :class:`~handlers.domain.jobs.Job`
method of the same name), the statuses it may start from, the status it leads to (``None``: the
status stays, the move only updates the job), and what triggers it. Nothing leaves a final
status. ``seedance-relay docs generate`` draws the README's state diagram and
``docs/lifecycle.md`` from this table.

Adding a state is one ``JobStatus`` member, one row per move into or out of it, and the method
for each new move.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from handlers.base.errors import Conflict

__all__ = ["MOVES", "OUTCOME_STATUS", "TERMINAL", "InvalidTransition", "JobStatus", "Move", "Outcome", "Step",
           "find_move", "next_statuses"]


class JobStatus(StrEnum):
    ACCEPTED = "accepted"
    QUEUED = "queued"
    WAITING = "waiting"
    SUBMITTED = "submitted"
    PROCESSING = "processing"
    STORED = "stored"
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Outcome(StrEnum):
    """How a job ended; each outcome has one event type, ``io.seedance-relay.job.<outcome>``."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"


OUTCOME_STATUS: Mapping[Outcome, JobStatus] = {
    Outcome.COMPLETED: JobStatus.PUBLISHED, Outcome.FAILED: JobStatus.FAILED,
    Outcome.CANCELLED: JobStatus.CANCELLED, Outcome.EXPIRED: JobStatus.EXPIRED, Outcome.REJECTED: JobStatus.REJECTED,
}
"""The final status that publishing each outcome's event leads to."""

TERMINAL = frozenset(OUTCOME_STATUS.values())


class Step(StrEnum):
    """The named transitions; each is the :class:`~handlers.domain.jobs.Job` method of the same name."""

    QUEUED = "queued"
    ADMITTED = "admitted"
    WAITED = "waited"
    READY = "ready"
    CLAIMED = "claimed"
    DEFERRED = "deferred"
    SUBMITTED = "submitted"
    UNCONFIRMED = "unconfirmed"
    RESOLVED = "resolved"
    PROGRESSED = "progressed"
    LEASED = "leased"
    RELEASED = "released"
    RETRIED = "retried"
    AT_RISK = "at_risk"
    STORED = "stored"
    CONCLUDED = "concluded"
    PUBLISHED = "published"
    NOTED_OTHER_TASK = "noted_other_task"
    NOTED_DEPENDENT = "noted_dependent"
    RESCHEDULED = "rescheduled"


@dataclass(frozen=True, slots=True)
class Move:
    """One allowed move: ``step`` from any of ``sources`` to ``target`` (``None``: the status stays).

    ``records`` is the outcome the move records, if it records one. ``outcome_known`` says whether
    the job's outcome must already be known (``True``), must not be (``False``), or either (``None``).
    """

    step: Step
    sources: frozenset[JobStatus]
    target: JobStatus | None
    trigger: str
    records: Outcome | None = None
    outcome_known: bool | None = False

    def allows(self, status: JobStatus, outcome: Outcome | None) -> bool:
        known = self.outcome_known
        return status in self.sources and (known is None or known == (outcome is not None))


def _from(*statuses: JobStatus) -> frozenset[JobStatus]:
    return frozenset(statuses)


_S = JobStatus
_NEW, _RUNNING = _from(_S.ACCEPTED), _from(_S.SUBMITTED, _S.PROCESSING)
_OPEN = _NEW | {_S.QUEUED, _S.WAITING} | _RUNNING
_LIVE = _OPEN | {_S.STORED}

MOVES: tuple[Move, ...] = (
    Move(Step.QUEUED, _NEW, _S.QUEUED,
         "no slot at EvoLink is free (`RELAY_MAX_IN_FLIGHT`, `RELAY_TENANT_MAX_IN_FLIGHT`), or EvoLink answered 429"),
    Move(Step.ADMITTED, _from(_S.QUEUED), _S.ACCEPTED, "a slot is free and it is the job's turn"),
    Move(Step.WAITED, _NEW, _S.WAITING,
         "the request names outputs of earlier jobs (`job://`, `shot://`) that are not published yet"),
    Move(Step.READY, _from(_S.WAITING), _S.ACCEPTED,
         "every job it names is published: it is submitted with short-lived URLs of their files"),
    Move(Step.CLAIMED, _NEW, None, "a submitter claims the job just before it calls EvoLink"),
    Move(Step.DEFERRED, _NEW, None, "EvoLink answered 429 or 5xx after retries; the reconciler submits again"),
    Move(Step.SUBMITTED, _NEW, _S.SUBMITTED, "EvoLink created the task"),
    Move(Step.UNCONFIRMED, _NEW, _S.SUBMITTED,
         "the create's outcome is unknown (timeout, unreadable answer, claim gone stale): wait for the callback"),
    Move(Step.RESOLVED, _from(_S.SUBMITTED), None, "a callback names the task of a job whose create was unconfirmed"),
    Move(Step.PROGRESSED, _from(_S.SUBMITTED), _S.PROCESSING, "EvoLink reports the task processing"),
    Move(Step.PROGRESSED, _RUNNING, None, "EvoLink reports progress"),
    Move(Step.LEASED, _RUNNING, None, "an ingest worker takes or renews the lease to copy the result"),
    Move(Step.RELEASED, _RUNNING, None, "copying failed in a way that is retried; the next worker may start at once"),
    Move(Step.RETRIED, _RUNNING, _S.ACCEPTED,
         "EvoLink failed the task with a code that says try again: a new task after a backoff, "
         "up to `RELAY_MAX_ATTEMPTS` attempts"),
    Move(Step.AT_RISK, _RUNNING, None,
         "EvoLink completed the task but its result is not copied within `RELAY_AT_RISK_AFTER`"),
    Move(Step.STORED, _RUNNING, _S.STORED, "the result is copied (outputs and manifest)", Outcome.COMPLETED),
    Move(Step.CONCLUDED, _NEW, None, "EvoLink refused the create, or the request was invalid", Outcome.REJECTED),
    Move(Step.CONCLUDED, _NEW, None, "EvoLink refused the create for the account: out of credits (402)",
         Outcome.FAILED),
    Move(Step.CONCLUDED, _RUNNING, None,
         "EvoLink failed the task or no longer knows it, or its result cannot be copied", Outcome.FAILED),
    Move(Step.CONCLUDED, _from(_S.WAITING), None,
         "a job it names failed, was cancelled or ended without a file (`dependency_failed`)", Outcome.FAILED),
    Move(Step.CONCLUDED, _RUNNING, None, "EvoLink cancelled the task", Outcome.CANCELLED),
    Move(Step.CONCLUDED, _OPEN, None,
         "its caller cancelled it (`DELETE /v1/jobs/{id}`) or its `cancel_after` deadline passed", Outcome.CANCELLED),
    Move(Step.CONCLUDED, _OPEN, None, "no final answer within `RELAY_EXPIRE_AFTER`", Outcome.EXPIRED),
    Move(Step.PUBLISHED, _from(_S.STORED), _S.PUBLISHED, "the `completed` event is out", outcome_known=True),
    Move(Step.PUBLISHED, _NEW | _RUNNING | {_S.WAITING}, _S.FAILED, "the `failed` event is out", outcome_known=True),
    Move(Step.PUBLISHED, _OPEN, _S.CANCELLED, "the `cancelled` event is out", outcome_known=True),
    Move(Step.PUBLISHED, _NEW, _S.REJECTED, "the `rejected` event is out", outcome_known=True),
    Move(Step.PUBLISHED, _OPEN, _S.EXPIRED, "the `expired` event is out", outcome_known=True),
    Move(Step.NOTED_OTHER_TASK, _LIVE, None, "a callback names another task for this job", outcome_known=None),
    Move(Step.NOTED_DEPENDENT, _LIVE, None,
         "a later job names its outputs and waits for it: its event wakes that job", outcome_known=None),
    Move(Step.RESCHEDULED, _LIVE, None, "the reconciler looks at the job again later", outcome_known=None),
)


class InvalidTransition(Conflict):
    """A move the lifecycle table does not allow from the job's status (and outcome)."""

    code = "invalid_transition"

    def __init__(self, job_id: str, step: Step, source: JobStatus, target: JobStatus,
                 outcome: Outcome | None) -> None:
        known = f"outcome {outcome}" if outcome is not None else "no outcome yet"
        super().__init__(f"job {job_id}: `{step}` cannot move it from {source} to {target} ({known})")
        self.job_id, self.step, self.source, self.target, self.outcome = job_id, step, source, target, outcome


def find_move(step: Step, status: JobStatus, outcome: Outcome | None, *, target: JobStatus | None = None,
              records: Outcome | None = None) -> Move | None:
    """The row that allows ``step`` from ``status`` to ``target`` recording ``records``, if any."""
    for move in MOVES:
        if move.step is step and move.target == target and move.records == records and move.allows(status, outcome):
            return move
    return None


def next_statuses(status: JobStatus) -> frozenset[JobStatus]:
    """Every status a job in ``status`` may have after one move (``status`` itself when a move keeps it)."""
    return frozenset(move.target or status for move in MOVES if status in move.sources)
