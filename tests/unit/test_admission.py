"""Admission: the fair order of queued jobs, what may go to EvoLink now, places in the queue, and the
throttle that answers EvoLink's 429s."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.domain.admission import Backoff, QueuedJob, Throttle, admissible, fair_order, queue_places

PROPERTY = settings(database=None, deadline=None, max_examples=300)
T0 = 1_700_000_000.0


def job(job_id: str, tenant: str, created_at: float) -> QueuedJob:
    return QueuedJob(job_id, tenant, T0 + created_at)


def ids(jobs: list[QueuedJob]) -> list[str]:
    return [queued.job_id for queued in jobs]


# --- the fair order ----------------------------------------------------------------------------

def test_one_tenants_jobs_leave_first_in_first_out() -> None:
    queued = [job("c", "acme", 3), job("a", "acme", 1), job("b", "acme", 2)]
    assert ids(fair_order(queued, {})) == ["a", "b", "c"]


def test_jobs_created_at_the_same_moment_leave_by_job_id() -> None:
    assert ids(fair_order([job("b", "acme", 1), job("a", "acme", 1)], {})) == ["a", "b"]


def test_tenants_with_as_many_in_flight_take_turns_the_shorter_backlog_first() -> None:
    queued = [job("a1", "acme", 1), job("a2", "acme", 2), job("a3", "acme", 3), job("b1", "beta", 10),
              job("b2", "beta", 11)]
    assert ids(fair_order(queued, {"acme": 1, "beta": 1})) == ["b1", "a1", "b2", "a2", "a3"]


def test_tenants_level_in_flight_and_backlog_take_turns_oldest_first() -> None:
    queued = [job("a1", "acme", 1), job("a2", "acme", 2), job("b1", "beta", 10), job("b2", "beta", 11)]
    assert ids(fair_order(queued, {"acme": 1, "beta": 1})) == ["a1", "b1", "a2", "b2"]


def test_the_tenant_with_fewest_in_flight_goes_first_until_it_catches_up() -> None:
    queued = [job(f"a{n}", "acme", n) for n in range(3)] + [job(f"b{n}", "beta", 10 + n) for n in range(4)]
    assert ids(fair_order(queued, {"acme": 2})) == ["b0", "b1", "b2", "a0", "b3", "a1", "a2"]


def test_a_burst_from_one_tenant_does_not_hold_back_a_later_tenant() -> None:
    queued = [job(f"a{n}", "acme", n) for n in range(100)] + [job("b0", "beta", 500)]
    assert ids(fair_order(queued, {}))[:3] == ["b0", "a0", "a1"]


def test_a_tenant_whose_running_job_just_ended_does_not_go_before_one_waiting_with_less() -> None:
    """One slot: acme's job has ended and acme has two more queued; beta's one job, queued later, is next."""
    queued = [job("a1", "acme", 1), job("a2", "acme", 2), job("b1", "beta", 3)]
    assert ids(fair_order(queued, {}))[0] == "b1"


def test_places_number_the_fair_order_from_one() -> None:
    queued = [job("a1", "acme", 1), job("a2", "acme", 2), job("b1", "beta", 3)]
    assert queue_places(queued, {"acme": 1}) == {"b1": 1, "a1": 2, "a2": 3}
    assert queue_places([], {}) == {}


def test_admissible_takes_the_head_of_the_fair_order_up_to_the_free_slots() -> None:
    queued = [job("a1", "acme", 1), job("a2", "acme", 2), job("b1", "beta", 3)]
    assert ids(admissible(queued, {}, free=2, tenant_cap=None)) == ["b1", "a1"]


@pytest.mark.parametrize("free", [0, -3])
def test_admissible_admits_nothing_without_a_free_slot(free: int) -> None:
    assert admissible([job("a1", "acme", 1)], {}, free=free, tenant_cap=None) == []


def test_admissible_passes_over_a_tenant_at_its_cap_and_serves_the_next() -> None:
    queued = [job("a1", "acme", 1), job("a2", "acme", 2), job("b1", "beta", 3), job("b2", "beta", 4)]
    assert ids(admissible(queued, {"acme": 2}, free=5, tenant_cap=2)) == ["b1", "b2"]


def test_admissible_counts_what_it_admits_against_the_tenant_cap() -> None:
    queued = [job(f"a{n}", "acme", n) for n in range(5)] + [job("b1", "beta", 10)]
    assert ids(admissible(queued, {}, free=10, tenant_cap=2)) == ["b1", "a0", "a1"]


queued_jobs = st.lists(
    st.builds(QueuedJob, job_id=st.uuids().map(str), tenant=st.sampled_from(["acme", "beta", "gamma", "delta"]),
              created_at=st.floats(min_value=0, max_value=100).map(lambda t: T0 + round(t))),
    max_size=40, unique_by=lambda queued: queued.job_id)
in_flight_counts = st.dictionaries(st.sampled_from(["acme", "beta", "gamma", "delta", "idle"]),
                                   st.integers(min_value=0, max_value=8), max_size=5)


@PROPERTY
@given(queued_jobs, in_flight_counts)
def test_the_fair_order_keeps_every_job_once_and_never_reorders_a_tenants_jobs(
        queued: list[QueuedJob], in_flight: dict[str, int]) -> None:
    order = fair_order(queued, in_flight)
    assert sorted(ids(order)) == sorted(ids(queued))
    for tenant in {queued_job.tenant for queued_job in queued}:
        mine = [queued_job for queued_job in order if queued_job.tenant == tenant]
        assert mine == sorted(mine, key=lambda queued_job: (queued_job.created_at, queued_job.job_id))


@PROPERTY
@given(queued_jobs, in_flight_counts)
def test_each_place_goes_to_a_tenant_with_the_fewest_in_flight_and_placed(
        queued: list[QueuedJob], in_flight: dict[str, int]) -> None:
    waiting = Counter(queued_job.tenant for queued_job in queued)
    counts = {tenant: in_flight.get(tenant, 0) for tenant in waiting}
    for queued_job in fair_order(queued, in_flight):
        assert counts[queued_job.tenant] == min(counts[tenant] for tenant in waiting if waiting[tenant])
        counts[queued_job.tenant] += 1
        waiting[queued_job.tenant] -= 1


@PROPERTY
@given(queued_jobs, in_flight_counts, st.integers(min_value=-2, max_value=50),
       st.none() | st.integers(min_value=0, max_value=6))
def test_admissible_never_passes_a_cap_and_leaves_no_slot_it_could_fill(
        queued: list[QueuedJob], in_flight: dict[str, int], free: int, tenant_cap: int | None) -> None:
    admitted = admissible(queued, in_flight, free=free, tenant_cap=tenant_cap)
    assert len(admitted) <= max(free, 0)
    order = fair_order(queued, in_flight)
    assert ids(admitted) == [job_id for job_id in ids(order) if job_id in set(ids(admitted))]
    per_tenant = Counter(queued_job.tenant for queued_job in admitted)
    if tenant_cap is not None:
        assert all(in_flight.get(tenant, 0) + count <= tenant_cap for tenant, count in per_tenant.items())
    if len(admitted) < free:
        left = {queued_job.tenant for queued_job in queued} - {queued_job.tenant for queued_job in admitted
                                                               if tenant_cap is None}
        for tenant in left:
            assert tenant_cap is not None
            waiting = sum(1 for queued_job in queued if queued_job.tenant == tenant)
            assert per_tenant[tenant] == waiting or in_flight.get(tenant, 0) + per_tenant[tenant] >= tenant_cap


@PROPERTY
@given(queued_jobs, in_flight_counts)
def test_places_run_from_one_to_the_number_queued(queued: list[QueuedJob], in_flight: dict[str, int]) -> None:
    places = queue_places(queued, in_flight)
    assert sorted(places.values()) == list(range(1, len(queued) + 1))


# --- the throttle ------------------------------------------------------------------------------

def throttle(configured: int = 16, draw: float = 0.5, **backoff: float) -> Throttle:
    return Throttle(configured, Backoff(**backoff), lambda: draw)


def test_a_429_with_retry_after_waits_exactly_that_long() -> None:
    limiter = throttle()
    assert limiter.on_rate_limited(T0, 7.5) == T0 + 7.5
    assert limiter.blocked_until == T0 + 7.5
    assert limiter.blocked(T0 + 7) and not limiter.blocked(T0 + 7.5)


@pytest.mark.parametrize(("retry_after", "wait"), [(-5.0, 0.0), (10_000.0, 900.0), (math.inf, 900.0)])
def test_retry_after_below_zero_or_past_the_longest_wait_is_clamped(retry_after: float, wait: float) -> None:
    assert throttle().on_rate_limited(T0, retry_after) == T0 + wait


@pytest.mark.parametrize("retry_after", [None, math.nan])
def test_a_429_without_a_usable_retry_after_backs_off_with_full_jitter(retry_after: float | None) -> None:
    assert throttle(draw=0.25, base=2.0).on_rate_limited(T0, retry_after) == T0 + 0.5


def test_the_backoff_doubles_per_429_episode_up_to_the_ceiling() -> None:
    limiter = throttle(draw=0.999, base=1.0, ceiling=5.0)
    waits = []
    now = T0
    for _ in range(5):
        until = limiter.on_rate_limited(now, None)
        waits.append(round(until - now, 3))
        now = until
    assert waits == [0.999, 1.998, 3.996, 4.995, 4.995]


def test_the_jitter_draws_from_the_injected_random() -> None:
    draws = iter([0.0, 0.9])
    limiter = Throttle(16, Backoff(base=10.0), lambda: next(draws))
    assert limiter.on_rate_limited(T0, None) == T0
    assert limiter.on_rate_limited(T0, None) == T0 + 0.9 * 20.0  # a second episode: the ceiling doubled


def test_each_429_episode_cuts_the_cap_multiplicatively_down_to_one() -> None:
    limiter = throttle(configured=20)
    caps = []
    now = T0
    for _ in range(6):
        now = limiter.on_rate_limited(now, 1.0)
        caps.append(limiter.effective_cap())
    assert caps == [10, 5, 2, 1, 1, 1]


def test_a_429_during_the_wait_lengthens_it_without_cutting_the_cap_again() -> None:
    limiter = throttle(configured=20)
    limiter.on_rate_limited(T0, 10.0)
    assert limiter.on_rate_limited(T0 + 1, 30.0) == T0 + 31
    assert limiter.on_rate_limited(T0 + 2, 1.0) == T0 + 31
    assert limiter.effective_cap() == 10
    assert limiter.strikes == 1


def test_successes_raise_the_cap_by_one_each_only_after_a_quiet_period() -> None:
    limiter = throttle(configured=4, quiet=30.0)
    limiter.on_rate_limited(T0, 1.0)
    limiter.on_success(T0 + 29)
    assert limiter.effective_cap() == 2
    limiter.on_success(T0 + 30)
    assert limiter.effective_cap() == 3
    limiter.on_success(T0 + 31)
    assert (limiter.effective_cap(), limiter.limit) == (4, None)
    limiter.on_success(T0 + 32)
    assert limiter.effective_cap() == 4


def test_a_success_starts_the_backoff_over() -> None:
    limiter = throttle(draw=0.5, base=1.0)
    now = limiter.on_rate_limited(T0, None)
    now = limiter.on_rate_limited(now, None)
    limiter.on_success(now)
    assert limiter.on_rate_limited(now, None) == now + 0.5


def test_a_fresh_throttle_is_open_at_the_configured_cap() -> None:
    limiter = throttle(configured=7)
    assert (limiter.effective_cap(), limiter.blocked(T0)) == (7, False)


def test_the_state_survives_a_round_trip_through_its_record() -> None:
    limiter = throttle(configured=20)
    limiter.on_rate_limited(T0, 5.0)
    again = Throttle.from_record(limiter.to_record(), configured=20, backoff=limiter.backoff)
    assert again == limiter
    assert limiter.to_record() == {"blocked_until": T0 + 5, "strikes": 1, "limit": 10, "limited_at": T0}


@pytest.mark.parametrize(("options", "field"), [
    ({"base": 0.0}, "base"), ({"base": 5.0, "ceiling": 1.0}, "ceiling"), ({"max_retry_after": -1.0}, "max_retry_after"),
    ({"decrease": 1.0}, "decrease"), ({"decrease": 0.0}, "decrease"), ({"quiet": -1.0}, "quiet")])
def test_a_backoff_with_a_bad_setting_names_it(options: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Backoff(**options)


def test_a_throttle_needs_a_cap_of_one_or_more() -> None:
    with pytest.raises(ValueError, match="configured cap must be 1 or more, got 0"):
        Throttle(0)


events = st.lists(st.tuples(st.sampled_from(["limited", "success"]), st.floats(min_value=0, max_value=120),
                            st.none() | st.just(math.nan) | st.floats(min_value=-10, max_value=10_000)), max_size=60)


@PROPERTY
@given(st.integers(min_value=1, max_value=500), events, st.floats(min_value=0, max_value=1, exclude_max=True))
def test_the_cap_stays_within_one_and_the_configured_cap(
        configured: int, happenings: list[tuple[str, float, float | None]], draw: float) -> None:
    limiter = Throttle(configured, Backoff(), lambda: draw)
    now = T0
    for kind, step, retry_after in happenings:
        now += step
        if kind == "limited":
            before = limiter.blocked_until
            until = limiter.on_rate_limited(now, retry_after)
            assert until >= max(now, before)
            assert until <= now + max(Backoff().max_retry_after, Backoff().ceiling)
        else:
            limiter.on_success(now)
        assert 1 <= limiter.effective_cap() <= configured
        assert limiter.limit is None or 1 <= limiter.limit < configured or limiter.limit == 1
