"""RELAY_SUBSCRIBERS read into the filters the buses take: every event type by its short or full name."""

from __future__ import annotations

import re

import pytest

from handlers.app.settings import Settings
from handlers.app.wiring import subscriber_filters
from handlers.base.errors import ConfigurationError
from handlers.domain.events import EVENT_TYPES, full_type, short_type
from handlers.usecases.replay import ReplayRequest, replay_filter

STORYBOARD_COMPLETED = "io.seedance-relay.storyboard.completed"
COMPLETED = "io.seedance-relay.job.completed"


def filters(subscribers: str) -> dict[str, list[str]]:
    return subscriber_filters(Settings.from_env({"RELAY_SUBSCRIBERS": subscribers}))


@pytest.mark.parametrize("name", ["storyboard.completed", STORYBOARD_COMPLETED])
def test_a_storyboard_type_becomes_its_full_type_not_a_jobs(name: str) -> None:
    assert filters(f"art:{name}") == {"art": [STORYBOARD_COMPLETED]}


@pytest.mark.parametrize("name", ["completed", "job.completed", COMPLETED])
def test_a_job_type_is_read_as_its_outcome_its_short_name_or_its_full_name(name: str) -> None:
    assert filters(f"crm:{name}") == {"crm": [COMPLETED]}


def test_a_filter_keeps_its_order_drops_repeats_and_keeps_its_tenants() -> None:
    assert filters("art:storyboard.completed+completed+job.completed@acme+beta,all:*") == {
        "art": [STORYBOARD_COMPLETED, COMPLETED, "tenant:acme", "tenant:beta"], "all": ["*"]}


def test_every_type_the_relay_publishes_can_be_named_the_way_it_is_shown() -> None:
    assert [full_type(short_type(t)) for t in EVENT_TYPES] == list(EVENT_TYPES)
    assert filters("all:" + "+".join(short_type(t) for t in EVENT_TYPES))["all"] == list(EVENT_TYPES)


@pytest.mark.parametrize("name", ["finished", "storyboard.done", "job.storyboard.completed",
                                  "io.seedance-relay.job.storyboard.completed"])
def test_a_type_the_relay_never_publishes_is_refused_naming_the_subscriber_and_the_accepted_names(
        name: str) -> None:
    says = (f"RELAY_SUBSCRIBERS: subscriber 'art' names unknown event type {name!r}; accepted: *, completed, "
            "failed, cancelled, expired, rejected, at_risk, storyboard.completed, storyboard.failed (or the full "
            "type, such as io.seedance-relay.job.completed)")
    with pytest.raises(ConfigurationError, match=re.escape(says)):
        filters(f"ok:*,art:completed+{name}")


def test_replay_of_storyboard_events_to_a_storyboard_subscriber_reads_exactly_that_type() -> None:
    items = filters("art:storyboard.completed")["art"]
    assert replay_filter(items, ReplayRequest("art")) == (frozenset({STORYBOARD_COMPLETED}), None)
    assert replay_filter(items, ReplayRequest("art", types=("storyboard.completed",)))[0] == {STORYBOARD_COMPLETED}
