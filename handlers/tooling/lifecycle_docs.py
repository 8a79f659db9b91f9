"""The job's life as pictures and tables, drawn from the lifecycle table (``handlers.domain.lifecycle.MOVES``).

``state_diagram()`` is a Mermaid ``stateDiagram-v2`` (GitHub renders it): the README's block between
the ``states`` markers holds it, and ``lifecycle_page()`` is ``docs/lifecycle.md``, with every move.
"""

from __future__ import annotations

from collections.abc import Sequence

from handlers.domain.events import event_type
from handlers.domain.lifecycle import MOVES, OUTCOME_STATUS, TERMINAL, JobStatus, Move, Step
from handlers.tooling.markdown import GENERATED, code, table

__all__ = ["SOURCE", "lifecycle_page", "state_diagram", "states_block"]

SOURCE = "`handlers/domain/lifecycle.py`"
_STAYS = "(stays)"


def _recorded_here(moves: Sequence[Move], move: Move, source: JobStatus) -> bool:
    """Whether a job in ``source`` records the outcome that ``move`` (a publish) ends in, without leaving ``source``."""
    return any(other.step is Step.CONCLUDED and source in other.sources and other.records is not None
               and OUTCOME_STATUS[other.records] is move.target for other in moves)


def _edges(moves: Sequence[Move]) -> dict[tuple[JobStatus, JobStatus], list[str]]:
    """Each move that changes the status, as (from, to) → the names that take it, in table order."""
    edges: dict[tuple[JobStatus, JobStatus], list[str]] = {}
    for status in JobStatus:
        for move in moves:
            if move.target is None or status not in move.sources:
                continue
            names = edges.setdefault((status, move.target), [])
            label = "concluded, then published" if _recorded_here(moves, move, status) else move.step.value
            if label not in names:
                names.append(label)
    return edges


def state_diagram(moves: Sequence[Move] = MOVES) -> list[str]:
    """A Mermaid state diagram of every status-changing move; the final statuses end the job."""
    lines = ["```mermaid", "stateDiagram-v2", f"    [*] --> {JobStatus.ACCEPTED}"]
    lines += [f"    {source} --> {target}: {' or '.join(names)}" for (source, target), names in _edges(moves).items()]
    lines += [f"    {status} --> [*]" for status in JobStatus if status in TERMINAL]
    return [*lines, "```"]


def states_block(moves: Sequence[Move] = MOVES) -> str:
    """The README's block: the diagram and where the full table is."""
    lines = [*state_diagram(moves), "",
             "Every move, those that keep the status included (a claim, progress, a lease, the recorded outcome),",
             "and what triggers each: [docs/lifecycle.md](docs/lifecycle.md)."]
    return "\n".join(lines) + "\n"


def _statuses(move: Move) -> str:
    return code(status.value for status in JobStatus if status in move.sources)


def _while(move: Move) -> str:
    return {False: "outcome unknown", True: "outcome known", None: "either"}[move.outcome_known]


def _move_rows(moves: Sequence[Move]) -> list[tuple[str, ...]]:
    return [(f"`{move.step}`", _statuses(move), f"`{move.target}`" if move.target else _STAYS,
             f"`{move.records}`" if move.records else "—", _while(move), move.trigger) for move in moves]


def lifecycle_page(moves: Sequence[Move] = MOVES) -> str:
    """``docs/lifecycle.md``: the diagram, every allowed move, and each outcome's final status and event."""
    final = code(status.value for status in JobStatus if status in TERMINAL)
    lines = ["# The job's life", "", GENERATED.format(source=SOURCE), "",
             "`status` says where a job is; `outcome` says how it ended. The outcome is recorded first (`stored` "
             "records `completed`, `concluded` the others) while the status stays; publishing the outcome's one "
             "event then moves the job to its final status. So a job that reads as final always has its event "
             "out, and a job whose outcome is recorded but not yet published is picked up again by the "
             "reconciler.", "",
             "Each move is a method of `Job` with the same name, stamped with the time it happened and written "
             "with a conditional write on the job's `version`. A move the table does not list is refused with "
             "the error code `invalid_transition`, and the job is left as it was.", "",
             "## States", "", *state_diagram(moves), "",
             "## Moves", "",
             f"Every allowed move. *{_STAYS}*: the move updates the job but keeps its status. *while*: whether "
             "the job's outcome must be unknown or known.", ""]
    lines += table(["move", "from", "to", "records", "while", "triggered by"], _move_rows(moves))
    lines += ["", "## Outcomes", ""]
    lines += table(["outcome", "final status", "event type"],
                   [(f"`{outcome}`", f"`{status}`", f"`{event_type(outcome)}`")
                    for outcome, status in OUTCOME_STATUS.items()])
    lines += ["", f"The final statuses are {final}. No move leaves them: a callback for a job that has ended is "
              "recorded once (`jobs/{id}/late-callback.json`) and otherwise ignored."]
    return "\n".join(lines) + "\n"
