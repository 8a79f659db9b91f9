"""The job's lifecycle: each named transition, and random sequences of them held to the one table of moves."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from handlers.base.errors import Conflict
from handlers.domain.jobs import Job, JobStatus, Outcome, Output
from handlers.domain.lifecycle import MOVES, OUTCOME_STATUS, TERMINAL, InvalidTransition, Step, next_statuses

T0 = 1_800_000_000.0
OUTPUT = Output(uri="file:///blobs/jobs/job_1/output-0.mp4", key="jobs/job_1/output-0.mp4", size=3, sha256="ab" * 32)
FAILURE = {"code": "generation_timeout", "message": "timed out"}


def accepted() -> Job:
    return Job(id="job_1", request={"prompt": "a cat"}, fingerprint="f" * 64, created_at=T0, updated_at=T0,
               check_at=T0 + 30)


def submitted() -> Job:
    return accepted().claimed(T0 + 1).submitted(T0 + 2, "task-unified-1-abc", estimated_time=60,
                                                credits_reserved=1.5, check_at=T0 + 90)


def processing() -> Job:
    return submitted().progressed(T0 + 3, 20, processing=True)


def stored() -> Job:
    return processing().leased(T0 + 4, "w1", T0 + 64).stored(T0 + 5, (OUTPUT,))


# --- each named transition -------------------------------------------------------------------------

def test_claimed_counts_an_attempt_and_keeps_the_job_accepted() -> None:
    job = accepted().claimed(T0 + 1)
    assert (job.status, job.submit_claimed_at, job.attempts, job.updated_at) == (JobStatus.ACCEPTED, T0 + 1, 1, T0 + 1)


def test_deferred_drops_the_claim_and_keeps_the_error_for_the_retry() -> None:
    job = accepted().claimed(T0 + 1).deferred(T0 + 2, {"code": "service_unavailable"}, T0 + 62)
    assert (job.status, job.submit_claimed_at, job.check_at) == (JobStatus.ACCEPTED, None, T0 + 62)
    assert job.error == {"code": "service_unavailable"}


def test_submitted_records_the_task_and_clears_an_earlier_error() -> None:
    job = accepted().deferred(T0 + 1, {"code": "x"}, T0 + 2).submitted(
        T0 + 3, "task-unified-1-abc", estimated_time=60, credits_reserved=1.5, check_at=T0 + 90)
    assert (job.status, job.task_id, job.submitted_at, job.error) == (JobStatus.SUBMITTED, "task-unified-1-abc",
                                                                      T0 + 3, None)
    assert (job.estimated_time, job.credits_reserved, job.check_at) == (60, 1.5, T0 + 90)


def test_unconfirmed_waits_for_the_callback_without_a_task_id() -> None:
    job = accepted().claimed(T0 + 1).unconfirmed(T0 + 2, "timed out", check_at=T0 + 3600)
    assert (job.status, job.task_id, job.unknown_outcome) == (JobStatus.SUBMITTED, None, True)
    assert job.error == {"code": "unknown_outcome", "message": "timed out"} and job.check_at == T0 + 3600


def test_resolved_learns_the_task_id_and_forgets_the_unknown_outcome() -> None:
    job = accepted().unconfirmed(T0 + 1, "timed out", check_at=T0 + 9).resolved(T0 + 2, "task-unified-1-x",
                                                                                estimated_time=30)
    assert (job.task_id, job.unknown_outcome, job.error, job.estimated_time) == ("task-unified-1-x", False, None, 30)


def test_progressed_moves_to_processing_only_when_the_task_says_so() -> None:
    assert submitted().progressed(T0 + 3, 10, processing=False).status is JobStatus.SUBMITTED
    assert submitted().progressed(T0 + 3, 10, processing=True).status is JobStatus.PROCESSING
    assert processing().progressed(T0 + 4, 70, processing=True).progress == 70


def test_leased_and_released_set_and_clear_the_lease() -> None:
    job = processing().leased(T0 + 4, "w1", T0 + 64)
    assert (job.lease_owner, job.lease_until) == ("w1", T0 + 64)
    assert (job.released(T0 + 5).lease_owner, job.released(T0 + 5).lease_until) == (None, None)


def test_stored_records_the_completed_outcome_with_its_outputs_and_makes_the_event_due() -> None:
    job = stored()
    assert (job.status, job.outcome, job.outputs, job.progress) == (JobStatus.STORED, Outcome.COMPLETED, (OUTPUT,), 100)
    assert job.finished_at == job.check_at == T0 + 5 and job.error is None


def test_concluded_records_the_outcome_but_keeps_the_status_until_published() -> None:
    job = processing().leased(T0 + 4, "w1", T0 + 64).concluded(T0 + 5, Outcome.FAILED, FAILURE)
    assert (job.status, job.outcome, job.error, job.finished_at) == (JobStatus.PROCESSING, Outcome.FAILED,
                                                                     FAILURE, T0 + 5)
    assert (job.lease_owner, job.check_at) == (None, T0 + 5)


def test_published_moves_to_the_outcomes_final_status_and_clears_the_due_time() -> None:
    job = processing().concluded(T0 + 5, Outcome.CANCELLED, None).published(T0 + 6, "evt-1")
    assert (job.status, job.event_ids, job.check_at, job.error) == (JobStatus.CANCELLED, ("evt-1",), None, None)
    assert stored().published(T0 + 6, "evt-2").status is JobStatus.PUBLISHED


def test_noted_other_task_and_rescheduled_keep_the_status() -> None:
    job = stored().noted_other_task(T0 + 6, "task-unified-2-b").rescheduled(T0 + 7, T0 + 67)
    assert (job.status, job.other_tasks, job.check_at) == (JobStatus.STORED, ("task-unified-2-b",), T0 + 67)


@pytest.mark.parametrize(("name", "move"), [
    ("a progress after stored", lambda: stored().progressed(T0 + 9, 50, processing=True)),
    ("a second conclude", lambda: processing().concluded(T0 + 5, Outcome.FAILED, None).concluded(
        T0 + 6, Outcome.EXPIRED, None)),
    ("a conclude after published", lambda: stored().published(T0 + 6, "e").concluded(T0 + 7, Outcome.FAILED, None)),
    ("a second publish", lambda: stored().published(T0 + 6, "e").published(T0 + 7, "e")),
    ("a publish before any outcome", lambda: processing().published(T0 + 6, "e")),
    ("completed without outputs", lambda: processing().concluded(T0 + 5, Outcome.COMPLETED, None)),
    ("rejected after the task exists", lambda: processing().concluded(T0 + 5, Outcome.REJECTED, None)),
    ("a second submit", lambda: submitted().submitted(T0 + 9, "task-unified-1-zz", estimated_time=None,
                                                      credits_reserved=None, check_at=T0 + 99)),
    ("a lease before the task exists", lambda: accepted().leased(T0 + 1, "w1", T0 + 61)),
])
def test_a_move_the_table_does_not_list_is_refused_with_invalid_transition(name: str, move: Callable[[], Job]) -> None:
    with pytest.raises(InvalidTransition, match=r"job job_1: `\w+` cannot move it from \w+ to \w+") as refused:
        move()
    assert refused.value.code == "invalid_transition" and isinstance(refused.value, Conflict), name


def test_the_refusal_names_the_move_the_two_statuses_and_the_outcome() -> None:
    with pytest.raises(InvalidTransition) as refused:
        stored().progressed(T0 + 9, 50, processing=True)
    error = refused.value
    assert (error.step, error.source, error.target, error.outcome) == (Step.PROGRESSED, JobStatus.STORED,
                                                                       JobStatus.PROCESSING, Outcome.COMPLETED)
    assert error.message == "job job_1: `progressed` cannot move it from stored to processing (outcome completed)"


def test_records_of_jobs_keep_their_format_and_load_back() -> None:
    job = stored().published(T0 + 6, "evt-1")
    record = job.to_record()
    assert (record["status"], record["outcome"]) == ("published", "completed")
    assert type(record["outcome"]) is str and Job.from_record(record) == job


def test_every_outcome_a_move_records_can_be_published_from_where_it_is_recorded() -> None:
    """No dead end: wherever the table records an outcome, a publish row leads to that outcome's final status."""
    for move in MOVES:
        if move.records is None:
            continue
        for source in move.sources:
            at = move.target or source
            publish = [m for m in MOVES if m.step is Step.PUBLISHED and at in m.sources]
            assert any(m.target is OUTCOME_STATUS[move.records] for m in publish), (move.step, source, move.records)


def test_no_row_leaves_a_final_status() -> None:
    assert all(not (move.sources & TERMINAL) for move in MOVES)
    assert all(next_statuses(status) == frozenset() for status in TERMINAL)


# --- random sequences -------------------------------------------------------------------------------

def _expected_target(step: Step, job: Job, *, to: JobStatus | None = None, records: Outcome | None = None,
                     any_target: bool = False) -> JobStatus | None:
    """The status the table says ``step`` leads ``job`` to (its own status for a move that keeps it), or None."""
    for move in MOVES:
        if move.step is not step or not move.allows(job.status, job.outcome) or move.records != records:
            continue
        if any_target or move.target == to:
            return move.target or job.status
    return None


class Lifecycle(RuleBasedStateMachine):
    """Drives one job through random transitions, duplicate and late ones included, checking each against the table."""

    def __init__(self) -> None:
        super().__init__()
        self.job = accepted()
        self.now = T0
        self.ended: JobStatus | None = None

    def _attempt(self, step: Step, move: Callable[[Job], Job], expected: JobStatus | None) -> None:
        self.now += 1
        before = self.job
        refused: InvalidTransition | None = None
        try:
            after = move(before)
        except InvalidTransition as exc:
            refused = exc
        if refused is not None:
            assert expected is None, f"{step} from {before.status} was refused but the table allows it"
            assert refused.code == "invalid_transition" and refused.step is step and refused.source is before.status
            assert self.job == before  # nothing was changed
            return
        assert expected is not None, f"{step} from {before.status} (outcome {before.outcome}) is not in the table"
        assert after.status is expected and after.status in next_statuses(before.status) | {before.status}
        assert after.updated_at == self.now and after.version == before.version
        self.job = after

    @rule()
    def claimed(self) -> None:
        self._attempt(Step.CLAIMED, lambda job: job.claimed(self.now), _expected_target(Step.CLAIMED, self.job))

    @rule()
    def deferred(self) -> None:
        self._attempt(Step.DEFERRED, lambda job: job.deferred(self.now, {"code": "x"}, self.now + 60),
                      _expected_target(Step.DEFERRED, self.job))

    @rule()
    def submitted(self) -> None:
        self._attempt(Step.SUBMITTED, lambda job: job.submitted(self.now, "task-unified-1-a", estimated_time=None,
                                                                credits_reserved=None, check_at=self.now + 90),
                      _expected_target(Step.SUBMITTED, self.job, to=JobStatus.SUBMITTED))

    @rule()
    def unconfirmed(self) -> None:
        self._attempt(Step.UNCONFIRMED, lambda job: job.unconfirmed(self.now, "lost", check_at=self.now + 90),
                      _expected_target(Step.UNCONFIRMED, self.job, to=JobStatus.SUBMITTED))

    @rule()
    def resolved(self) -> None:
        self._attempt(Step.RESOLVED, lambda job: job.resolved(self.now, "task-unified-1-b", estimated_time=None),
                      _expected_target(Step.RESOLVED, self.job))

    @rule(progress=st.integers(0, 100), processing=st.booleans())
    def progressed(self, progress: int, processing: bool) -> None:
        to = JobStatus.PROCESSING if processing and self.job.status is not JobStatus.PROCESSING else None
        self._attempt(Step.PROGRESSED, lambda job: job.progressed(self.now, progress, processing=processing),
                      _expected_target(Step.PROGRESSED, self.job, to=to))

    @rule(worker=st.sampled_from(["w1", "w2"]))
    def leased(self, worker: str) -> None:
        self._attempt(Step.LEASED, lambda job: job.leased(self.now, worker, self.now + 60),
                      _expected_target(Step.LEASED, self.job))

    @rule()
    def released(self) -> None:
        self._attempt(Step.RELEASED, lambda job: job.released(self.now), _expected_target(Step.RELEASED, self.job))

    @rule()
    def stored(self) -> None:
        self._attempt(Step.STORED, lambda job: job.stored(self.now, (OUTPUT,)),
                      _expected_target(Step.STORED, self.job, to=JobStatus.STORED, records=Outcome.COMPLETED))

    @rule(outcome=st.sampled_from(Outcome))
    def concluded(self, outcome: Outcome) -> None:
        self._attempt(Step.CONCLUDED, lambda job: job.concluded(self.now, outcome, FAILURE),
                      _expected_target(Step.CONCLUDED, self.job, records=outcome))

    @rule()
    def published(self) -> None:
        final = None if self.job.outcome is None else OUTCOME_STATUS[self.job.outcome]
        expected = _expected_target(Step.PUBLISHED, self.job, to=final) if final else None
        self._attempt(Step.PUBLISHED, lambda job: job.published(self.now, f"evt-{job.outcome}"), expected)

    @rule(task_id=st.sampled_from(["task-unified-2-a", "task-unified-3-b"]))
    def noted_other_task(self, task_id: str) -> None:
        self._attempt(Step.NOTED_OTHER_TASK, lambda job: job.noted_other_task(self.now, task_id),
                      _expected_target(Step.NOTED_OTHER_TASK, self.job))

    @rule()
    def rescheduled(self) -> None:
        self._attempt(Step.RESCHEDULED, lambda job: job.rescheduled(self.now, self.now + 60),
                      _expected_target(Step.RESCHEDULED, self.job))

    @invariant()
    def a_final_status_is_final(self) -> None:
        if self.ended is not None:
            assert self.job.status is self.ended
        elif self.job.terminal:
            self.ended = self.job.status

    @invariant()
    def a_final_job_has_its_outcome_and_its_one_event(self) -> None:
        job = self.job
        if job.terminal:
            assert job.outcome is not None and OUTCOME_STATUS[job.outcome] is job.status
            assert len(job.event_ids) == 1 and job.check_at is None
        assert job.status is not JobStatus.STORED or (job.outcome is Outcome.COMPLETED and job.outputs)
        assert job.outcome is not None or not job.event_ids


TestLifecycle = Lifecycle.TestCase
TestLifecycle.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
