"""Callbacks exactly as EvoLink sends them, with switches to make them misbehave.

A POST of the task JSON; 10 s timeout; any 2xx is success; otherwise up to 3 retries,
1 s, 2 s and 4 s after each failure. ``callback_drop`` loses every callback of a task,
``callback_duplicate`` sends N extra copies concurrently, ``callback_delay`` waits first.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from handlers.base.logs import get_logger
from handlers.sandbox.settings import SandboxSettings

__all__ = ["CallbackSender"]

log = get_logger(__name__)
USER_AGENT = "seedance-relay-sandbox (EvoLink look-alike)"


class CallbackSender:
    def __init__(
        self,
        settings: SandboxSettings,
        *,
        rng: random.Random,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_workers: int = 32,
    ) -> None:
        self._settings = settings
        self._rng = rng
        self._rng_lock = threading.Lock()
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sandbox-cb")
        self._http = httpx.Client(
            transport=transport,
            timeout=settings.callback_timeout,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=max_workers * 2),
        )
        self.sent = 0
        self.dropped = 0

    def deliver(self, url: str, task: Mapping[str, Any]) -> None:
        """Schedule the callbacks for one final task; returns at once."""
        with self._rng_lock:
            drop = self._rng.random() < self._settings.callback_drop
        if drop:
            self.dropped += 1
            log.info("sandbox.callback.dropped", task_id=task.get("id"))
            return
        body = json.dumps(task, separators=(",", ":")).encode()
        for _ in range(1 + self._settings.callback_duplicate):
            self._pool.submit(self._deliver_one, url, body, str(task.get("id")))

    def _deliver_one(self, url: str, body: bytes, task_id: str) -> None:
        if self._settings.callback_delay:
            self._sleep(self._settings.callback_delay)
        delays = self._settings.callback_retry_delays
        for attempt in range(len(delays) + 1):
            if self._post(url, body, task_id, attempt):
                return
            if attempt < len(delays):
                self._sleep(delays[attempt])
        log.warning("sandbox.callback.gave_up", task_id=task_id, attempts=len(delays) + 1)

    def _post(self, url: str, body: bytes, task_id: str, attempt: int) -> bool:
        try:
            response = self._http.post(url, content=body)
        except httpx.HTTPError as exc:
            log.info("sandbox.callback.error", task_id=task_id, attempt=attempt, error=str(exc))
            return False
        self.sent += 1
        ok = response.is_success
        log.info("sandbox.callback.sent", task_id=task_id, attempt=attempt,
                 status=response.status_code)
        return ok

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
