"""The publish-once algorithm every bus shares, on a ledger kept in a dict (the backends fill the same hooks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from handlers.adapters.ledger import Claimed, EventLedger, Held
from handlers.base.errors import QueueError
from tests.support.fakes import Clock

EVENT = {"id": "evt-1", "type": "ai.seedance-relay.job.completed"}


class MemoryLedger(EventLedger[None]):
    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock.now, sleep=clock.sleep, lease_seconds=30, poll_interval=5)
        self.states: dict[str, Held] = {}
        self.calls: list[str] = []

    def _claim(self, event_id: str, event: Mapping[str, Any]) -> Claimed[None] | Held:
        self.calls.append("claim")
        if event_id in self.states:
            return self.states[event_id]
        self.states[event_id] = Held.PUBLISHING
        return Claimed(event_id, None)

    def _record(self, claim: Claimed[None]) -> None:
        self.calls.append("record")
        self.states[claim.event_id] = Held.PUBLISHED

    def _release(self, claim: Claimed[None]) -> None:
        self.calls.append("release")
        del self.states[claim.event_id]


def test_an_event_is_fanned_out_once_then_recorded() -> None:
    ledger, sent = MemoryLedger(Clock()), []
    ledger.once(EVENT, lambda _: sent.append(1))
    ledger.once(EVENT, lambda _: sent.append(2))
    assert sent == [1] and ledger.calls == ["claim", "record", "claim"]


def test_a_failed_fan_out_releases_the_claim_so_the_next_publish_goes_out() -> None:
    ledger, sent = MemoryLedger(Clock()), []

    def broken(_: None) -> None:
        raise QueueError("topic gone")

    with pytest.raises(QueueError, match="topic gone"):
        ledger.once(EVENT, broken)
    ledger.once(EVENT, lambda _: sent.append(1))
    assert sent == [1] and ledger.calls == ["claim", "release", "claim", "record"]


def test_a_claim_held_elsewhere_past_its_lease_gives_up_with_publish_in_progress() -> None:
    clock = Clock()
    ledger = MemoryLedger(clock)
    ledger.states["evt-1"] = Held.PUBLISHING
    with pytest.raises(QueueError, match="evt-1") as caught:
        ledger.once(EVENT, lambda _: None)
    assert caught.value.code == "publish_in_progress" and "record" not in ledger.calls


def test_an_event_without_an_id_is_refused_before_any_claim() -> None:
    ledger = MemoryLedger(Clock())
    with pytest.raises(QueueError, match="'id' and 'type'"):
        ledger.once({"type": "x"}, lambda _: None)
    assert ledger.calls == []
