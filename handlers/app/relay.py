"""The relay's parts, wired once (see ``handlers.app.wiring``) and handed to every use case."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from handlers.app.settings import Settings
from handlers.domain.admission import IN_FLIGHT_LIMIT, Throttle
from handlers.domain.pricing import PriceTable
from handlers.domain.tokens import TokenSigner
from handlers.ports import BlobStore, BudgetLedger, EventBus, JobStore, KeyStore, Provider, SlotPool, WorkQueue

if TYPE_CHECKING:
    from handlers.app.metrics import RelayMetrics
    from handlers.media.processes import MediaProcesses
    from handlers.net.download import ResultFetcher

__all__ = ["Relay"]


@dataclass
class Relay:
    settings: Settings
    jobs: JobStore
    blobs: BlobStore
    ingest_queue: WorkQueue
    bus: EventBus
    provider: Provider
    signer: TokenSigner
    fetcher: ResultFetcher
    callback_base: str
    metrics: RelayMetrics
    keys: KeyStore
    ledger: BudgetLedger
    slots: SlotPool
    prices: PriceTable
    clock: Callable[[], float] = time.time
    throttle: Throttle = field(default_factory=lambda: Throttle(IN_FLIGHT_LIMIT))
    """This process's answer to EvoLink's 429s (each process keeps its own)."""
    closers: list[Callable[[], None]] = field(default_factory=list)
    media_processes: MediaProcesses | None = None
    """Child processes that read stored videos (``serve`` on a local folder); ``None``: read in the calling thread."""

    def callback_url(self, job_id: str) -> str:
        token = self.signer.sign(job_id)
        return f"{self.callback_base}/v1/callbacks/evolink/{job_id}?token={token}"

    def close(self) -> None:
        for close in reversed(self.closers):
            close()
        self.closers.clear()
