"""Replay's pure parts: what ``--since`` accepts, and which types and tenants a subscriber's replay reads."""

from __future__ import annotations

import re

import pytest

from handlers.base.errors import InvalidRequest
from handlers.usecases.replay import ReplayRequest, parse_since, replay_filter

NOW = 1_800_000_000.0
COMPLETED, FAILED = "io.seedance-relay.job.completed", "io.seedance-relay.job.failed"


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", NOW - 90), ("30m", NOW - 1800), ("2h", NOW - 7200), ("3d", NOW - 3 * 86_400), ("1w", NOW - 604_800),
    ("1.5h", NOW - 5400), (" 2h ", NOW - 7200),
    ("2027-01-15T08:00:00Z", 1_800_000_000.0), ("2027-01-15T08:00:00.5z", 1_800_000_000.5),
    ("2027-01-15T10:00:00+02:00", 1_800_000_000.0),
])
def test_since_takes_a_duration_back_from_now_or_an_rfc3339_time(text: str, expected: float) -> None:
    assert parse_since(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["yesterday", "2h ago", "-2h", "2 hours", "2027-01-15", "2027-01-15T08:00:00",
                                  "1700000000", ""])
def test_since_refuses_anything_else_saying_what_it_takes(text: str) -> None:
    with pytest.raises(ValueError, match=r"RFC 3339 time with an offset .* duration \(30m, 2h, 3d, 1w\)"):
        parse_since(text, NOW)


def test_a_subscriber_of_every_type_and_tenant_reads_everything_unless_narrowed() -> None:
    assert replay_filter(["*"], ReplayRequest("all")) == (None, None)
    assert replay_filter(["*"], ReplayRequest("all", types=("failed",), tenant="acme")) == (
        frozenset({FAILED}), frozenset({"acme"}))


def test_a_filtered_subscriber_reads_only_what_its_filter_lets_through() -> None:
    assert replay_filter([COMPLETED, FAILED, "tenant:acme", "tenant:beta"], ReplayRequest("crm")) == (
        frozenset({COMPLETED, FAILED}), frozenset({"acme", "beta"}))


def test_a_full_type_and_an_outcome_name_the_same_type() -> None:
    assert replay_filter([COMPLETED], ReplayRequest("crm", types=(COMPLETED, "completed")))[0] == {COMPLETED}


@pytest.mark.parametrize(("request_", "field", "says"), [
    (ReplayRequest("crm", types=("failed",)), "type", "does not receive 'failed' events (its filter: completed"),
    (ReplayRequest("crm", types=("done",)), "type", "unknown event type 'done'; accepted: completed, failed"),
    (ReplayRequest("crm", tenant="beta"), "tenant", "does not receive the events of tenant 'beta'"),
])
def test_a_type_or_tenant_the_subscriber_does_not_receive_is_refused_naming_the_field(
        request_: ReplayRequest, field: str, says: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(says)) as caught:
        replay_filter([COMPLETED, "tenant:acme"], request_)
    assert [v.field for v in caught.value.violations] == [field]


STORYBOARD_COMPLETED = "io.seedance-relay.storyboard.completed"


@pytest.mark.parametrize("name", [STORYBOARD_COMPLETED, "storyboard.completed"])
def test_a_storyboard_type_is_taken_as_its_full_name_or_without_the_family(name: str) -> None:
    assert replay_filter(["*"], ReplayRequest("all", types=(name,)))[0] == {STORYBOARD_COMPLETED}


@pytest.mark.parametrize("name", ["completed", "job.completed", COMPLETED])
def test_a_job_type_is_taken_as_its_outcome_its_short_name_or_its_full_name(name: str) -> None:
    assert replay_filter(["*"], ReplayRequest("all", types=(name,)))[0] == {COMPLETED}


@pytest.mark.parametrize("name", ["storyboard.done", "io.seedance-relay.storyboard.done", "io.seedance-relay.done"])
def test_an_unknown_type_of_any_family_is_refused_as_typed_with_the_accepted_ones(name: str) -> None:
    says = f"unknown event type {name!r}; accepted: completed, failed"
    with pytest.raises(InvalidRequest, match=re.escape(says)) as caught:
        replay_filter(["*"], ReplayRequest("all", types=(name,)))
    assert "storyboard.completed, storyboard.failed" in str(caught.value)


def test_a_storyboard_type_the_subscriber_does_not_receive_is_refused_by_its_short_name() -> None:
    with pytest.raises(InvalidRequest, match=re.escape("does not receive 'storyboard.failed' events (its filter: "
                                                       "completed storyboard.completed)")):
        replay_filter([COMPLETED, STORYBOARD_COMPLETED], ReplayRequest("crm", types=("storyboard.failed",)))
