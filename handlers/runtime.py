"""The local runtime: API, ingest workers and reconciler in one process.

With no ``EVOLINK_API_KEY`` the sandbox runs in-process on its own loopback port and the
relay talks to it over real HTTP, exactly as it would to EvoLink. With no key but an
``EVOLINK_BASE_URL``, that URL is taken to be a sandbox already running elsewhere
(``seedance-relay sandbox``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from starlette.applications import Starlette

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.logs import get_logger
from handlers.ports import WorkQueue
from handlers.relay import Relay
from handlers.sandbox.app import create_sandbox_app
from handlers.sandbox.engine import SandboxEngine
from handlers.sandbox.settings import SandboxSettings
from handlers.server import BackgroundServer
from handlers.settings import DEFAULT_EVOLINK_URL, Settings
from handlers.usecases import reconcile
from handlers.usecases.work import handle_ingest_message
from handlers.webhooks import WebhookDeliverer, build_deliverer, run_webhook_loop
from handlers.wiring import build_relay, local_secret

__all__ = ["LocalRuntime", "run_worker_once"]

log = get_logger(__name__)


def run_worker_once(relay: Relay, queue: WorkQueue, *, worker: str, wait: float = 1.0) -> int:
    """Receive one batch from the ingest queue and settle every message; returns the count."""
    messages = queue.receive(max_messages=5, wait=wait)
    for message in messages:
        disposition = handle_ingest_message(relay, message.body, worker=worker,
                                            receive_count=message.receive_count)
        if disposition.done:
            queue.ack(message)
        else:
            queue.retry_later(message, disposition.delay)
    return len(messages)


@dataclass
class LocalRuntime:
    settings: Settings
    sandbox: SandboxSettings | None = None
    relay: Relay | None = None
    build: Callable[[Settings], Relay] = build_relay
    api_keys: tuple[str, ...] = ()
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _sandbox_server: BackgroundServer | None = None
    _engine: SandboxEngine | None = None
    _webhooks: WebhookDeliverer | None = None

    def start(self) -> LocalRuntime:
        settings = self.settings
        if settings.uses_sandbox and settings.evolink_base_url == DEFAULT_EVOLINK_URL:
            settings = self._start_sandbox(settings)
        self.api_keys = settings.api_keys or (local_secret(settings.data_dir / "api-key", 24),)
        self.settings = settings
        self.relay = self.build(settings)
        self._webhooks = build_deliverer(settings)
        for name in self._webhooks.names:
            loop = partial(run_webhook_loop, self._webhooks, name, self.relay.bus.subscriber(name), self._stop,
                           wait=1.0)
            self._spawn(loop, f"webhook-{name}")
        for index in range(max(1, settings.worker_concurrency)):
            self._spawn(self._work_loop, f"ingest-{index}")
        self._spawn(self._reconcile_loop, "reconciler")
        return self

    def _start_sandbox(self, settings: Settings) -> Settings:
        sandbox = (self.sandbox or SandboxSettings.from_env()).with_(
            data_dir=settings.data_dir / "sandbox")
        self._engine = SandboxEngine(sandbox).start()
        self._sandbox_server = BackgroundServer(create_sandbox_app(self._engine))
        url = self._sandbox_server.start()
        log.info("sandbox.started", url=url, speed=sandbox.speed,
                 note="EvoLink look-alike in-process; set EVOLINK_API_KEY to use EvoLink")
        return settings.with_(evolink_base_url=url)

    def app(self) -> Starlette:
        assert self.relay is not None, "start() first"
        keys = ApiKeys(self.api_keys)
        return create_app(self.relay, keys, extra_routes=dashboard_routes(self.relay, keys))

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _work_loop(self) -> None:
        assert self.relay is not None
        worker = f"{threading.current_thread().name}-{uuid.uuid4().hex[:6]}"
        while not self._stop.is_set():
            try:
                run_worker_once(self.relay, self.relay.ingest_queue, worker=worker, wait=1.0)
            except Exception:
                log.exception("worker.batch_failed", worker=worker)
                self._stop.wait(1.0)

    def _reconcile_loop(self) -> None:
        assert self.relay is not None
        while not self._stop.wait(self.settings.reconcile_every):
            try:
                reconcile(self.relay)
            except Exception:
                log.exception("reconcile.failed")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=20)
        if self._webhooks is not None:
            self._webhooks.close()
        if self.relay is not None:
            self.relay.close()
        if self._sandbox_server is not None:
            self._sandbox_server.stop()
        if self._engine is not None:
            self._engine.stop()
