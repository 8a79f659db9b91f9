"""Group commit for callbacks: those checked in the same turn of the event loop are queued together.

Under load, a callback that arrives while others are being read joins their batch, so the
job lookups and one queue write (one SQLite commit, or SQS batches of 10) are shared. Alone,
a callback is a batch of one and waits for nothing. With ``inline`` the batch runs on the
event loop: the local SQLite adapters answer in microseconds, and a hop to a worker thread
costs more than that (the thread waits for the loop to let go of the GIL). Without it (a
network backend such as DynamoDB and SQS) the batch runs in the thread pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool

from handlers.app.relay import Relay
from handlers.usecases.callbacks import accept_callbacks

__all__ = ["CallbackBatch"]

Waiting = tuple[Mapping[str, Any], "asyncio.Future[str | None]"]


class CallbackBatch:
    def __init__(self, relay: Relay, *, inline: bool) -> None:
        self._relay = relay
        self._inline = inline
        self._pending: list[Waiting] = []
        self._flusher: asyncio.Task[None] | None = None

    async def accept(self, message: Mapping[str, Any]) -> str | None:
        """Queue ``message`` with the others of its batch; its message id, or None if its job is unknown."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()
        self._pending.append((message, future))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(0)  # the callbacks read in this turn of the loop join the batch
                batch, self._pending = self._pending, []
                await self._write(batch)
        finally:
            self._flusher = None

    async def _write(self, batch: list[Waiting]) -> None:
        messages = [message for message, _ in batch]
        try:
            if self._inline:
                ids = accept_callbacks(self._relay, messages)
            else:
                ids = await run_in_threadpool(accept_callbacks, self._relay, messages)
        except Exception as exc:  # noqa: BLE001 - every waiter gets it; the route's error handling answers
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), message_id in zip(batch, ids, strict=True):
            future.set_result(message_id)
