"""Admission and budgets in the job's life, on local adapters with a fake provider: slots under the caps,
queued jobs and their places, 429s, the reconciler reclaiming a dead holder's slot, holds and their settling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.app.relay import Relay
from handlers.app.runtime import run_worker_once
from handlers.base.errors import BudgetExceeded, ProviderUnavailable
from handlers.domain.jobs import JobStatus
from handlers.usecases import ingest, reconcile, submit
from handlers.usecases.admission import ADMIT_LEASE, places
from tests.support.fakes import Clock, FakeProvider, local_relay

REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4}


def request(n: int) -> dict[str, object]:
    return {**REQUEST, "prompt": f"shot {n}"}


def _relay(tmp_path: Path, provider: FakeProvider, clock: Clock, **env: str) -> Iterator[Relay]:
    """The relay, with the fake provider's result host (the media server, plain http) allowed as the sandbox's."""
    base = provider.results[0].rsplit("/", 1)[0]
    relay = local_relay(tmp_path, provider, clock=clock, RELAY_API_KEYS="acme:key-a,beta:key-b",
                        EVOLINK_BASE_URL=base, **env)
    yield relay
    relay.close()


@pytest.fixture
def capped(tmp_path: Path, provider: FakeProvider, clock: Clock) -> Iterator[Relay]:
    """At most two tasks at EvoLink, one per tenant."""
    yield from _relay(tmp_path, provider, clock, RELAY_MAX_IN_FLIGHT="2", RELAY_TENANT_MAX_IN_FLIGHT="1")


def finish(relay: Relay, provider: FakeProvider, job_id: str, task_id: str) -> None:
    """The provider completes the task, the job is ingested, and every queued message is worked off."""
    provider.finish(task_id)
    ingest(relay, job_id, task_hint=task_id)
    while run_worker_once(relay, relay.ingest_queue, worker="w", wait=0.0):
        pass


def test_a_job_over_its_tenants_cap_waits_queued_with_its_place(
        capped: Relay, provider: FakeProvider, clock: Clock) -> None:
    first = submit(capped, request(1), tenant="acme")
    second = submit(capped, request(2), tenant="acme")
    clock.advance(1)
    third = submit(capped, request(3), tenant="acme")
    assert first.status is JobStatus.SUBMITTED and len(provider.creates) == 1
    assert (second.status, third.status) == (JobStatus.QUEUED, JobStatus.QUEUED)
    assert places(capped) == {second.id: 1, third.id: 2}


def test_a_freed_slot_admits_the_next_queued_job_first_in_first_out(
        capped: Relay, provider: FakeProvider, clock: Clock) -> None:
    first = submit(capped, request(1), tenant="acme")
    clock.advance(1)
    second = submit(capped, request(2), tenant="acme")
    clock.advance(1)
    third = submit(capped, request(3), tenant="acme")
    assert first.task_id is not None
    finish(capped, provider, first.id, first.task_id)
    assert capped.jobs.get(first.id).status is JobStatus.PUBLISHED
    assert capped.jobs.get(second.id).status is JobStatus.SUBMITTED and len(provider.creates) == 2
    assert capped.jobs.get(third.id).status is JobStatus.QUEUED


def test_another_tenant_is_not_held_back_by_one_tenants_queue(capped: Relay, provider: FakeProvider) -> None:
    submit(capped, request(1), tenant="acme")
    queued = submit(capped, request(2), tenant="acme")
    other = submit(capped, request(3), tenant="beta")
    assert queued.status is JobStatus.QUEUED and other.status is JobStatus.SUBMITTED
    assert len(capped.slots.leases(capped.clock())) == 2


def test_a_429_queues_the_job_until_the_wait_and_then_it_is_submitted(
        capped: Relay, provider: FakeProvider, clock: Clock) -> None:
    provider.create_error = ProviderUnavailable("EvoLink 429", status=429, code="rate_limited", retry_after=30.0)
    job = submit(capped, request(1), tenant="acme")
    assert job.status is JobStatus.QUEUED and job.error and job.error["code"] == "rate_limited"
    assert capped.slots.leases(clock()) == []  # the slot went back
    provider.create_error = None
    clock.advance(10)
    reconcile(capped)
    assert capped.jobs.get(job.id).status is JobStatus.QUEUED  # still inside Retry-After
    clock.advance(25)
    reconcile(capped)
    assert capped.jobs.get(job.id).status is JobStatus.SUBMITTED and len(provider.creates) == 2


def test_the_reconciler_frees_the_slot_of_a_submitter_that_died_before_creating_the_task(
        capped: Relay, provider: FakeProvider, clock: Clock) -> None:
    """A slot taken, then the process gone before the task was created: the lease expires and frees it."""
    now = clock()
    assert capped.slots.acquire("job_ghost", "acme", now=now, until=now + ADMIT_LEASE, cap=2, tenant_cap=1)
    queued = submit(capped, request(1), tenant="acme")
    assert queued.status is JobStatus.QUEUED
    clock.advance(ADMIT_LEASE + 1)
    counts = reconcile(capped)
    assert counts.get("slots_reclaimed") == 1
    assert capped.jobs.get(queued.id).status is JobStatus.SUBMITTED


def test_a_submit_past_the_budget_is_refused_before_the_provider_and_holds_nothing(
        tmp_path: Path, provider: FakeProvider, clock: Clock) -> None:
    for relay in _relay(tmp_path, provider, clock, RELAY_BUDGETS="acme=60/day"):
        job = submit(relay, {**REQUEST, "duration": 10}, tenant="acme")  # 10 s of 720p: 60 credits
        assert job.credits_estimated == 60 and job.credits_held == 60
        with pytest.raises(BudgetExceeded) as refused:
            submit(relay, {**REQUEST, "duration": 4, "prompt": "one more"}, tenant="acme")
        assert refused.value.remaining == 0 and refused.value.resets_at.endswith("T00:00:00.000000Z")
        assert len(provider.creates) == 1
        assert submit(relay, request(9), tenant="beta").status is JobStatus.SUBMITTED  # beta has no budget


def test_a_completed_job_settles_its_hold_to_what_the_provider_billed(
        tmp_path: Path, provider: FakeProvider, clock: Clock) -> None:
    for relay in _relay(tmp_path, provider, clock, RELAY_BUDGETS="acme=1000/month"):
        job = submit(relay, {**REQUEST, "duration": 10}, tenant="acme")
        assert job.task_id is not None and job.hold_period is not None
        finish(relay, provider, job.id, job.task_id)
        usage = relay.ledger.usage("acme", job.hold_period)
        assert (usage.held, usage.spent) == (0.0, 30.0)  # the fake provider reserves 30 credits


def test_a_replayed_submit_holds_nothing_more(tmp_path: Path, provider: FakeProvider, clock: Clock) -> None:
    for relay in _relay(tmp_path, provider, clock, RELAY_BUDGETS="acme=100/day"):
        first = submit(relay, REQUEST, tenant="acme", idempotency_key="k-1")
        again = submit(relay, REQUEST, tenant="acme", idempotency_key="k-1")
        assert first.id == again.id and first.hold_period is not None
        assert relay.ledger.usage("acme", first.hold_period).held == first.credits_held


def test_the_same_idempotency_key_of_two_tenants_makes_two_jobs(
        tmp_path: Path, provider: FakeProvider, clock: Clock) -> None:
    for relay in _relay(tmp_path, provider, clock):
        acme = submit(relay, REQUEST, tenant="acme", idempotency_key="shared")
        beta = submit(relay, REQUEST, tenant="beta", idempotency_key="shared")
        assert acme.id != beta.id and (acme.tenant, beta.tenant) == ("acme", "beta")
