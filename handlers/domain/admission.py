"""Which queued jobs go to EvoLink next, and how hard to push after a ``429``.

**The fair order.** Queued jobs leave first in first out within a tenant (by ``created_at``,
then job id), and fairly across tenants by this rule: each next place goes to the tenant with
the fewest jobs *in flight plus already placed ahead*; ties to the tenant with the fewest jobs
still waiting (so a burst's backlog never goes before a tenant with one job waiting, even when
the burst's running job has just ended), then to the tenant whose next job is oldest (then
lowest job id). A tenant with fewer in flight goes first until it has caught up, so one
tenant's burst never starves the others. :func:`fair_order` is that sequence; :func:`queue_places` numbers it
from 1 (the place a queued job shows); :func:`admissible` walks it, passing over the jobs of a
tenant at its own cap, until the free slots are used.

**The throttle.** :class:`Throttle` answers EvoLink's ``429 Too Many Requests``: wait as
``Retry-After`` says, or back off exponentially with full jitter; and lower the cap the relay
acquires slots under (multiplicative decrease, never below 1) while ``429`` s continue, raising
it again by one per successful create once no ``429`` has come for a quiet period (additive
increase). A ``429`` that arrives while the relay is still waiting out an earlier one (a request
that was already on its way) lengthens the wait but does not lower the cap again.
"""

from __future__ import annotations

import heapq
import math
import random
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IN_FLIGHT_LIMIT", "Backoff", "QueuedJob", "Throttle", "admissible", "fair_order", "queue_places"]

IN_FLIGHT_LIMIT = 1000
"""The largest cap the slot pools are built for (the DynamoDB pool keeps every lease in one item)."""


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """What the fair order needs of a queued job."""

    job_id: str
    tenant: str
    created_at: float


def fair_order(queued: Iterable[QueuedJob], in_flight: Mapping[str, int]) -> list[QueuedJob]:
    """Every queued job, in the order they go to EvoLink (see the module docstring for the rule)."""
    by_tenant: dict[str, list[QueuedJob]] = defaultdict(list)
    for job in queued:
        by_tenant[job.tenant].append(job)
    lines = {tenant: sorted(jobs, key=lambda job: (job.created_at, job.job_id)) for tenant, jobs in by_tenant.items()}
    heap = [_turn(in_flight.get(tenant, 0), len(line), line[0]) for tenant, line in lines.items()]
    heapq.heapify(heap)
    served = dict.fromkeys(lines, 0)
    order: list[QueuedJob] = []
    while heap:
        count, _, _, _, tenant = heapq.heappop(heap)
        order.append(lines[tenant][served[tenant]])
        served[tenant] += 1
        if served[tenant] < len(lines[tenant]):
            line = lines[tenant]
            heapq.heappush(heap, _turn(count + 1, len(line) - served[tenant], line[served[tenant]]))
    return order


def _turn(count: int, waiting: int, job: QueuedJob) -> tuple[int, int, float, str, str]:
    """A tenant's claim on the next place: fewest in flight (and placed), then the shortest backlog, then the
    oldest next job."""
    return count, waiting, job.created_at, job.job_id, job.tenant


def queue_places(queued: Iterable[QueuedJob], in_flight: Mapping[str, int]) -> dict[str, int]:
    """Each queued job's place in the fair order, from 1, by job id."""
    return {job.job_id: place for place, job in enumerate(fair_order(queued, in_flight), start=1)}


def admissible(queued: Iterable[QueuedJob], in_flight: Mapping[str, int], *, free: int,
               tenant_cap: int | None) -> list[QueuedJob]:
    """The jobs to submit now: the first ``free`` of the fair order whose tenant stays within ``tenant_cap``
    (in flight plus admitted here; ``None``: no tenant cap). ``free`` of 0 or less admits nothing."""
    taken = dict(in_flight)
    admitted: list[QueuedJob] = []
    for job in fair_order(queued, in_flight):
        if len(admitted) >= free:
            break
        if tenant_cap is not None and taken.get(job.tenant, 0) >= tenant_cap:
            continue
        taken[job.tenant] = taken.get(job.tenant, 0) + 1
        admitted.append(job)
    return admitted


@dataclass(frozen=True, slots=True)
class Backoff:
    """How a :class:`Throttle` waits and lowers its cap (seconds, and a factor).

    ``base``: the first backoff's ceiling, doubled per ``429`` in a row up to ``ceiling``;
    ``max_retry_after``: the longest ``Retry-After`` obeyed as given; ``decrease``: the factor the
    cap is multiplied by per ``429``; ``quiet``: how long without a ``429`` before successes raise it.
    """

    base: float = 1.0
    ceiling: float = 120.0
    max_retry_after: float = 900.0
    decrease: float = 0.5
    quiet: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.ceiling < math.inf:
            raise ValueError(f"Backoff: need 0 < base <= ceiling < inf, got base={self.base} ceiling={self.ceiling}")
        if not 0 < self.max_retry_after < math.inf:
            raise ValueError(f"Backoff: max_retry_after must be a positive number, got {self.max_retry_after}")
        if not 0 < self.decrease < 1:
            raise ValueError(f"Backoff: decrease must be between 0 and 1 (exclusive), got {self.decrease}")
        if not 0 <= self.quiet < math.inf:
            raise ValueError(f"Backoff: quiet must be 0 or more seconds, got {self.quiet}")

    def delay(self, strikes: int, draw: float) -> float:
        """Full jitter: ``draw`` (in ``[0, 1)``) times ``base * 2 ** (strikes - 1)``, capped at ``ceiling``."""
        exponent = min(max(strikes - 1, 0), 64)
        return min(max(draw, 0.0), 1.0) * min(self.ceiling, self.base * 2.0 ** exponent)

    def obeyed(self, retry_after: float | None) -> float | None:
        """``Retry-After`` as a wait (0 for a negative one, at most ``max_retry_after``); ``None``: not usable."""
        if retry_after is None or math.isnan(retry_after):
            return None
        return min(max(retry_after, 0.0), self.max_retry_after)


_STATE = ("blocked_until", "strikes", "limit", "limited_at")


@dataclass(slots=True)
class Throttle:
    """The cap and the wait after EvoLink's ``429`` s, for a cap of ``configured`` tasks in flight.

    The state is four fields (:meth:`to_record` / :meth:`from_record`): ``blocked_until`` (no
    create before it), ``strikes`` (``429`` episodes in a row, for the backoff), ``limit`` (the
    lowered cap; ``None``: ``configured``) and ``limited_at`` (the last ``429``). Methods are safe
    to call from several threads. ``draw`` gives the jitter, in ``[0, 1)`` (inject a seeded one in tests).

    Each process keeps its own throttle: what one process learns from a ``429`` slows only the
    acquires it makes (its lower cap is compared with the pool's global count, so it stops adding
    tasks once that many are in flight). On Lambda every execution environment starts fresh at its
    cold start and forgets at its end, so the pool's configured cap stays the guard and the wait
    is re-learned from EvoLink's ``Retry-After`` by each environment that meets a ``429``.
    """

    configured: int
    backoff: Backoff = field(default_factory=Backoff)
    draw: Callable[[], float] = field(default=random.random, repr=False, compare=False)
    blocked_until: float = 0.0
    strikes: int = 0
    limit: int | None = None
    limited_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.configured < 1:
            raise ValueError(f"Throttle: configured cap must be 1 or more, got {self.configured}")

    def on_rate_limited(self, now: float, retry_after: float | None) -> float:
        """Record a ``429`` at ``now``; the time to wait until before the next create."""
        with self._lock:
            if now >= self.blocked_until:  # a new episode, not a straggler of the one being waited out
                self.strikes += 1
                current = self.limit if self.limit is not None else self.configured
                self.limit = max(1, math.floor(current * self.backoff.decrease))
            self.limited_at = now
            wait = self.backoff.obeyed(retry_after)
            if wait is None:
                wait = self.backoff.delay(self.strikes, self.draw())
            self.blocked_until = max(self.blocked_until, now + wait)
            return self.blocked_until

    def on_success(self, now: float) -> None:
        """Record a create EvoLink accepted: the backoff starts over, and after a quiet period the cap climbs."""
        with self._lock:
            self.strikes = 0
            if self.limit is None or self.limited_at is None or now - self.limited_at < self.backoff.quiet:
                return
            self.limit += 1
            if self.limit >= self.configured:
                self.limit = None

    def effective_cap(self) -> int:
        """The cap to acquire slots under now: ``configured``, or lower while ``429`` s continue; at least 1."""
        limit = self.limit if self.limit is not None else self.configured
        return max(1, min(limit, self.configured))

    def blocked(self, now: float) -> bool:
        """Whether a create at ``now`` would come before the wait ends."""
        return now < self.blocked_until

    def to_record(self) -> dict[str, Any]:
        """The state, as plain JSON values."""
        return {name: getattr(self, name) for name in _STATE}

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, configured: int, backoff: Backoff | None = None,
                    draw: Callable[[], float] = random.random) -> Throttle:
        """A throttle in the state :meth:`to_record` gave."""
        limit, limited_at = record.get("limit"), record.get("limited_at")
        return cls(configured, backoff or Backoff(), draw, blocked_until=float(record.get("blocked_until", 0.0)),
                   strikes=int(record.get("strikes", 0)), limit=None if limit is None else int(limit),
                   limited_at=None if limited_at is None else float(limited_at))
