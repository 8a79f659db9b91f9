"""SlotPool contract: leases under a global and a per-tenant cap, idempotent acquire, renew and release,
expiry (an expired lease stops counting and is listed as expired), and caps that hold under races."""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from handlers.adapters.aws import AwsNames, DynamoJobStore, DynamoSlotPool, aws_clients
from handlers.adapters.aws.bootstrap import ensure_table
from handlers.adapters.local import SqliteJobStore, SqliteSlotPool
from handlers.domain.jobs import Job, JobStatus
from handlers.ports import JobStore, SlotLease, SlotPool
from tests.contract.conftest import BACKENDS, aws_names, close
from tests.support.slots import AcquireRace, acquire_in_processes, acquire_in_threads

T0 = 1_700_000_000.0
LEASE = 600.0


def _local(folder: Path) -> tuple[SlotPool, JobStore]:
    return SqliteSlotPool(folder / "slots.db", legacy=folder / "jobs.db"), SqliteJobStore(folder / "jobs.db")


def _aws(folder: Path) -> tuple[SlotPool, JobStore]:
    client, table = aws_clients(AwsNames(), endpoint_url=os.environ["AWS_ENDPOINT_URL"]).dynamodb, \
        aws_names(folder).table
    ensure_table(client, table)
    return DynamoSlotPool(client, table), DynamoJobStore(client, table)


SLOT_POOLS: dict[str, Callable[[Path], tuple[SlotPool, JobStore]]] = {"local": _local, "aws": _aws}


@pytest.fixture(params=BACKENDS)
def pool_and_jobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SlotPool, JobStore]]:
    """A slot pool and a job store sharing one place: the SQLite file, or the DynamoDB table."""
    if request.param == "aws":
        request.getfixturevalue("aws_endpoint")
    pool, jobs = SLOT_POOLS[request.param](tmp_path)
    yield pool, jobs
    close(pool)
    close(jobs)


@pytest.fixture
def slot_pool(pool_and_jobs: tuple[SlotPool, JobStore]) -> SlotPool:
    return pool_and_jobs[0]


def take(pool: SlotPool, job_id: str, tenant: str = "acme", *, now: float = T0, until: float = T0 + LEASE,
         cap: int = 3, tenant_cap: int | None = None) -> bool:
    return pool.acquire(job_id, tenant, now=now, until=until, cap=cap, tenant_cap=tenant_cap)


def held(pool: SlotPool, now: float = T0) -> list[str]:
    return [lease.job_id for lease in pool.leases(now)]


def test_acquire_under_the_cap_takes_a_slot(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_1")
    assert slot_pool.leases(T0) == [SlotLease("job_1", "acme", T0 + LEASE)]


def test_acquire_at_the_cap_is_refused_and_leaves_the_leases_alone(slot_pool: SlotPool) -> None:
    assert [take(slot_pool, f"job_{n}", cap=2) for n in range(3)] == [True, True, False]
    assert sorted(held(slot_pool)) == ["job_0", "job_1"]


def test_acquire_counts_every_tenant_against_the_global_cap(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_1", "acme", cap=2)
    assert take(slot_pool, "job_2", "beta", cap=2)
    assert not take(slot_pool, "job_3", "gamma", cap=2)


def test_acquire_at_the_tenant_cap_is_refused_while_other_tenants_still_get_slots(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_1", "acme", cap=10, tenant_cap=2)
    assert take(slot_pool, "job_2", "acme", cap=10, tenant_cap=2)
    assert not take(slot_pool, "job_3", "acme", cap=10, tenant_cap=2)
    assert take(slot_pool, "job_4", "beta", cap=10, tenant_cap=2)


def test_a_tenant_cap_of_zero_refuses_even_a_tenant_with_nothing_in_flight(slot_pool: SlotPool) -> None:
    assert not take(slot_pool, "job_1", "acme", cap=10, tenant_cap=0)
    assert slot_pool.leases(T0) == []


def test_acquire_again_keeps_the_one_slot_and_extends_it(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_1", cap=1)
    assert take(slot_pool, "job_1", now=T0 + 10, until=T0 + 2 * LEASE, cap=1)
    assert slot_pool.leases(T0 + 10) == [SlotLease("job_1", "acme", T0 + 2 * LEASE)]


def test_acquire_again_by_a_holder_succeeds_even_at_the_cap(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_1", cap=2)
    assert take(slot_pool, "job_2", cap=2)
    assert take(slot_pool, "job_1", cap=2)
    assert sorted(held(slot_pool)) == ["job_1", "job_2"]


def test_acquire_again_never_shortens_a_lease(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_1", until=T0 + LEASE)
    assert take(slot_pool, "job_1", until=T0 + 5)
    assert slot_pool.leases(T0)[0].until == T0 + LEASE


def test_release_frees_the_slot_for_another_job(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_1", cap=1)
    assert not take(slot_pool, "job_2", cap=1)
    slot_pool.release("job_1")
    assert take(slot_pool, "job_2", cap=1)
    assert held(slot_pool) == ["job_2"]


def test_release_frees_the_tenants_slot_too(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_1", "acme", cap=10, tenant_cap=1)
    slot_pool.release("job_1")
    assert take(slot_pool, "job_2", "acme", cap=10, tenant_cap=1)


def test_release_twice_or_without_a_lease_does_nothing(slot_pool: SlotPool) -> None:
    slot_pool.release("job_never")
    assert take(slot_pool, "job_1")
    assert take(slot_pool, "job_2")
    slot_pool.release("job_1")
    slot_pool.release("job_1")
    assert held(slot_pool) == ["job_2"]


def test_an_expired_lease_no_longer_counts_and_is_listed_as_expired(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_dead", until=T0 + 60, cap=1)
    later = T0 + 61
    assert slot_pool.leases(later) == []
    assert slot_pool.expired(later) == [SlotLease("job_dead", "acme", T0 + 60)]
    assert take(slot_pool, "job_2", now=later, until=later + LEASE, cap=1)
    assert held(slot_pool, later) == ["job_2"]
    assert slot_pool.expired(later) == [SlotLease("job_dead", "acme", T0 + 60)]


def test_an_expired_lease_no_longer_counts_against_its_tenant(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_dead", "acme", until=T0 + 60, cap=10, tenant_cap=1)
    assert take(slot_pool, "job_2", "acme", now=T0 + 61, until=T0 + LEASE, cap=10, tenant_cap=1)
    assert not take(slot_pool, "job_3", "acme", now=T0 + 62, until=T0 + LEASE, cap=10, tenant_cap=1)


def test_a_lease_is_expired_from_its_until_on(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_1", until=T0 + 60)
    assert held(slot_pool, T0 + 59.5) == ["job_1"]
    assert slot_pool.leases(T0 + 60) == []
    assert [lease.job_id for lease in slot_pool.expired(T0 + 60)] == ["job_1"]


def test_release_of_an_expired_lease_removes_it_from_expired(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_dead", until=T0 + 60, cap=1)
    assert take(slot_pool, "job_2", now=T0 + 61, until=T0 + LEASE, cap=1)  # the dead lease is passed over
    slot_pool.release("job_dead")
    assert slot_pool.expired(T0 + 61) == []
    assert held(slot_pool, T0 + 61) == ["job_2"]


def test_expired_lists_oldest_first_up_to_the_limit(slot_pool: SlotPool) -> None:
    for n, end in enumerate((30.0, 10.0, 20.0)):
        assert take(slot_pool, f"job_{n}", until=T0 + end)
    assert [lease.job_id for lease in slot_pool.expired(T0 + 100)] == ["job_1", "job_2", "job_0"]
    assert [lease.job_id for lease in slot_pool.expired(T0 + 100, limit=2)] == ["job_1", "job_2"]
    assert [lease.job_id for lease in slot_pool.expired(T0 + 15)] == ["job_1"]


def test_acquire_passes_over_more_expired_leases_than_one_sweep_takes(slot_pool: SlotPool) -> None:
    for n in range(120):
        assert take(slot_pool, f"dead_{n:03}", until=T0 + 60, cap=120)
    assert take(slot_pool, "job_1", now=T0 + 61, until=T0 + LEASE, cap=10)
    assert held(slot_pool, T0 + 61) == ["job_1"]
    assert len(slot_pool.expired(T0 + 61, limit=1000)) == 120


def test_expired_forgets_a_lease_a_week_past_its_end(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_dead", until=T0 + 60, cap=1)
    week = 7 * 86_400.0
    assert [lease.job_id for lease in slot_pool.expired(T0 + 60 + week - 1)] == ["job_dead"]
    assert slot_pool.expired(T0 + 60 + week) == []
    assert take(slot_pool, "job_2", now=T0 + 60 + week, until=T0 + 2 * week, cap=1)
    assert slot_pool.expired(T0 + 60 + week) == []


def test_an_expired_holder_acquiring_again_needs_a_free_slot(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_1", until=T0 + 60, cap=1)
    assert take(slot_pool, "job_2", now=T0 + 61, until=T0 + LEASE, cap=1)
    assert not take(slot_pool, "job_1", now=T0 + 62, until=T0 + LEASE, cap=1)
    slot_pool.release("job_2")
    assert take(slot_pool, "job_1", now=T0 + 63, until=T0 + LEASE, cap=1)
    assert slot_pool.leases(T0 + 63) == [SlotLease("job_1", "acme", T0 + LEASE)]
    assert slot_pool.expired(T0 + 63) == []


def test_renew_extends_an_unexpired_lease(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_1", until=T0 + 60)
    assert slot_pool.renew("job_1", now=T0 + 30, until=T0 + 90)
    assert slot_pool.leases(T0 + 80) == [SlotLease("job_1", "acme", T0 + 90)]


def test_renew_never_shortens_a_lease(slot_pool: SlotPool) -> None:
    assert take(slot_pool, "job_1", until=T0 + 60)
    assert slot_pool.renew("job_1", now=T0 + 30, until=T0 + 40)
    assert slot_pool.leases(T0)[0].until == T0 + 60


def test_renew_without_a_lease_or_after_it_expired_is_refused(slot_pool: SlotPool) -> None:
    assert not slot_pool.renew("job_never", now=T0, until=T0 + 60)
    assert take(slot_pool, "job_1", until=T0 + 60)
    assert not slot_pool.renew("job_1", now=T0 + 60, until=T0 + 120)
    assert slot_pool.leases(T0 + 60) == []
    slot_pool.release("job_1")
    assert not slot_pool.renew("job_1", now=T0, until=T0 + 120)


def test_leases_are_listed_soonest_to_end_first(slot_pool: SlotPool) -> None:
    for job_id, tenant, end in (("job_a", "acme", 300.0), ("job_b", "beta", 100.0), ("job_c", "acme", 200.0),
                                ("job_d", "beta", 200.0)):
        assert take(slot_pool, job_id, tenant, until=T0 + end, cap=10)
    assert slot_pool.leases(T0) == [SlotLease("job_b", "beta", T0 + 100), SlotLease("job_c", "acme", T0 + 200),
                                    SlotLease("job_d", "beta", T0 + 200), SlotLease("job_a", "acme", T0 + 300)]


def test_the_pool_is_invisible_to_the_job_store_it_shares_a_place_with(
        pool_and_jobs: tuple[SlotPool, JobStore]) -> None:
    pool, jobs = pool_and_jobs
    job = jobs.create(Job(id="job_1", request={"prompt": "a cat"}, fingerprint="f" * 64, created_at=T0,
                          updated_at=T0))
    assert take(pool, "job_1")
    assert take(pool, "job_dead", until=T0 + 1)
    assert take(pool, "job_2", now=T0 + 2)  # sweeps the dead lease aside
    assert jobs.page() == ([job], None)
    assert jobs.count(JobStatus.ACCEPTED, 10) == 1
    assert jobs.due(T0 + 10**6) == []


RACERS = 64


@pytest.mark.parametrize("cap", [1, 8, 63])
def test_concurrent_acquires_from_threads_never_pass_the_cap(slot_pool: SlotPool, cap: int) -> None:
    race = AcquireRace(now=T0, until=T0 + LEASE, cap=cap, tenant_cap=None, tenants=4)
    taken = acquire_in_threads(slot_pool, race, [f"job_{n}" for n in range(RACERS)])
    assert len(taken) == cap
    assert sorted(held(slot_pool)) == sorted(taken)


def test_concurrent_acquires_from_threads_never_pass_a_tenant_cap(slot_pool: SlotPool) -> None:
    race = AcquireRace(now=T0, until=T0 + LEASE, cap=RACERS, tenant_cap=3, tenants=4)
    taken = acquire_in_threads(slot_pool, race, [f"job_{n}" for n in range(RACERS)])
    assert Counter(race.tenant_of(job_id) for job_id in taken) == {f"tenant-{n}": 3 for n in range(4)}
    assert len(slot_pool.leases(T0)) == 12


def test_concurrent_acquires_pass_over_expired_leases_without_passing_the_cap(slot_pool: SlotPool) -> None:
    for n in range(4):
        assert take(slot_pool, f"dead_{n}", until=T0 - 1, now=T0 - 10, cap=4)
    race = AcquireRace(now=T0, until=T0 + LEASE, cap=4, tenant_cap=None, tenants=2)
    taken = acquire_in_threads(slot_pool, race, [f"job_{n}" for n in range(RACERS)])
    assert len(taken) == 4
    assert sorted(held(slot_pool)) == sorted(taken)
    assert sorted(lease.job_id for lease in slot_pool.expired(T0)) == [f"dead_{n}" for n in range(4)]


def test_local_concurrent_acquires_from_processes_never_pass_the_cap(tmp_path: Path) -> None:
    recipe = functools.partial(SqliteSlotPool, tmp_path / "jobs.db")
    race = AcquireRace(now=T0, until=T0 + LEASE, cap=8, tenant_cap=None, tenants=4)
    taken = acquire_in_processes(recipe, race, [f"job_{n}" for n in range(RACERS)], processes=4)
    assert len(taken) == 8
    pool = recipe()
    try:
        assert sorted(held(pool)) == sorted(taken)
    finally:
        pool.close()


def test_leases_an_older_version_kept_in_the_job_store_s_file_move_to_the_slot_pool_s_own(tmp_path: Path) -> None:
    """Local only: an upgrade keeps the jobs in flight counted, and moving twice counts nothing twice."""
    old = SqliteSlotPool(tmp_path / "relay.sqlite3")
    assert old.acquire("job_a", "acme", now=T0, until=T0 + LEASE, cap=2, tenant_cap=None)
    assert old.acquire("job_b", "beta", now=T0, until=T0 + LEASE, cap=2, tenant_cap=None)
    old.close()
    pool = SqliteSlotPool(tmp_path / "slots.sqlite3", legacy=tmp_path / "relay.sqlite3")
    try:
        assert [lease.job_id for lease in pool.leases(T0)] == ["job_a", "job_b"]
        assert not pool.acquire("job_c", "acme", now=T0, until=T0 + LEASE, cap=2, tenant_cap=None)
        pool.release("job_a")
    finally:
        pool.close()
    again = SqliteSlotPool(tmp_path / "slots.sqlite3", legacy=tmp_path / "relay.sqlite3")
    left = SqliteSlotPool(tmp_path / "relay.sqlite3")
    try:
        assert [lease.job_id for lease in again.leases(T0)] == ["job_b"]  # a released lease does not come back
        assert left.leases(T0) == []
    finally:
        again.close()
        left.close()


def test_a_job_store_file_without_slot_leases_moves_nothing(tmp_path: Path) -> None:
    SqliteJobStore(tmp_path / "relay.sqlite3").close()
    pool = SqliteSlotPool(tmp_path / "slots.sqlite3", legacy=tmp_path / "relay.sqlite3")
    try:
        assert pool.leases(T0) == []
    finally:
        pool.close()
