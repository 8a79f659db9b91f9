"""Publish once per CloudEvent ``id``: the algorithm, written once for every event bus.

:meth:`EventLedger.once` claims the id, fans the event out under the claim, and records
it published; if the fan-out fails the claim is released, so the next publisher may try.
A publisher that finds the id claimed by another waits for it (polling) and returns once
it is recorded, or gives up with ``publish_in_progress`` when the other's lease has had
time to run out and it still holds the id. An id already recorded is a no-op.

Each backend fills in three hooks over its own storage:

    _claim(id, event)    a conditional write: a :class:`Claimed` handle, or the state another left
    _record(claim)       the claim becomes "published"
    _release(claim)      the claim is dropped (best effort)

The SQLite bus claims inside a write transaction (the fan-out joins it, ``_record`` commits,
``_release`` rolls back; the transaction is the lease). The DynamoDB ledger claims with a
conditional ``PutItem`` carrying a lease, which a later publisher may take over once it ran out.
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from handlers.base.errors import QueueError

__all__ = ["Claimed", "EventLedger", "Held", "event_identity"]

H = TypeVar("H")


class Held(enum.Enum):
    """The state another publisher left an event id in."""

    PUBLISHING = "publishing"
    PUBLISHED = "published"


@dataclass(frozen=True, slots=True)
class Claimed(Generic[H]):
    """This publisher holds ``event_id``; ``handle`` is what the backend needs to fan out, record or release."""

    event_id: str
    handle: H


def event_identity(event: Mapping[str, Any]) -> tuple[str, str]:
    """The CloudEvent's ``id`` and ``type``; ``QueueError`` (``invalid_event``) if either is missing."""
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str) or not event_type:
        raise QueueError("a CloudEvent needs a non-empty string 'id' and 'type'", code="invalid_event")
    return event_id, event_type


class EventLedger(ABC, Generic[H]):
    """Which event ids were published; :meth:`once` runs a fan-out at most once per id."""

    def __init__(self, *, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 lease_seconds: float = 30.0, poll_interval: float = 0.05) -> None:
        self._clock = clock
        self._sleep = sleep
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval

    def once(self, event: Mapping[str, Any], fan_out: Callable[[H], None]) -> None:
        """Run ``fan_out`` under a claim on the event's ``id`` unless it was published; wait out a racing publisher."""
        claim = self._wait_for_claim(event_identity(event)[0], event)
        if claim is None:
            return
        try:
            fan_out(claim.handle)
        except BaseException:
            self._release(claim)
            raise
        self._record(claim)

    def _wait_for_claim(self, event_id: str, event: Mapping[str, Any]) -> Claimed[H] | None:
        """Our claim, or ``None`` once another publisher recorded the id."""
        deadline = self._clock() + self.lease_seconds + 5 * self.poll_interval
        while True:
            claim = self._claim(event_id, event)
            if isinstance(claim, Claimed):
                return claim
            if claim is Held.PUBLISHED:
                return None
            if self._clock() > deadline:
                raise QueueError(f"event {event_id!r} is still being published elsewhere",
                                 code="publish_in_progress")
            self._sleep(self.poll_interval)

    @abstractmethod
    def _claim(self, event_id: str, event: Mapping[str, Any]) -> Claimed[H] | Held:
        """Claim ``event_id`` if nobody holds it (or another's lease ran out); else the state found."""

    @abstractmethod
    def _record(self, claim: Claimed[H]) -> None:
        """Mark the claimed id published."""

    @abstractmethod
    def _release(self, claim: Claimed[H]) -> None:
        """Drop the claim after a failed fan-out (best effort: a lease frees it anyway)."""
