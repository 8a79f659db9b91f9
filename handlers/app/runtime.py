"""The local runtime: API, ingest workers and reconciler in one process.

With no ``EVOLINK_API_KEY`` the sandbox runs in-process on its own loopback port and the
relay talks to it over real HTTP, exactly as it would to EvoLink. With no key but an
``EVOLINK_BASE_URL``, that URL is taken to be a sandbox already running elsewhere
(``seedance-relay sandbox``).

The in-process sandbox keeps its port across restarts: the port it chose first is written
to ``<data dir>/sandbox/port`` and taken again on the next start, so the task ids, result
URLs and callbacks of jobs in flight when the relay stopped (SIGTERM or SIGKILL) still
reach it, and the sandbox, which keeps its tasks on disk, finishes them; the jobs end
``published``. If that port is taken by then, the sandbox starts on a new one (a
``sandbox.port_changed`` warning says so) and gives every result URL, old tasks' included,
on its new address, the only one the relay's download allow-list knows; those jobs end
``published`` too. Ports the sandbox used before are never allow-listed: something else may
listen there now.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.app.relay import Relay
from handlers.app.settings import DEFAULT_EVOLINK_URL, Settings
from handlers.app.wiring import build_event_log, build_relay, local_secret
from handlers.base.logs import get_logger
from handlers.domain.pricing import load_price_table
from handlers.media.processes import MediaProcesses
from handlers.net.server import BackgroundServer, free_port
from handlers.ports import WorkQueue, settle
from handlers.sandbox.app import create_sandbox_app
from handlers.sandbox.engine import SandboxEngine
from handlers.sandbox.settings import SandboxSettings
from handlers.usecases import reconcile
from handlers.usecases.media import media_reader_available
from handlers.usecases.retention import collect_garbage
from handlers.usecases.work import handle_ingest_message
from handlers.webhooks import WebhookDeliverer, build_deliverer, run_webhook_loop

__all__ = ["SANDBOX_PORT_FILE", "LocalRuntime", "run_worker_once"]

log = get_logger(__name__)
SANDBOX_HOST = "127.0.0.1"
SANDBOX_PORT_FILE = "port"  # in the sandbox's data dir: the port the in-process sandbox serves on
GC_FIRST_AFTER = 60.0  # seconds from start to the first clean-up pass (then every RELAY_GC_EVERY)


def run_worker_once(relay: Relay, queue: WorkQueue, *, worker: str, wait: float = 1.0) -> int:
    """Receive one batch from the ingest queue and settle every message; returns the count."""
    messages = queue.receive(max_messages=5, wait=wait)
    for message in messages:
        disposition = handle_ingest_message(relay, message.body, worker=worker,
                                            receive_count=message.receive_count)
        settle(queue, message, done=disposition.done, delay=disposition.delay)
    return len(messages)


@dataclass
class LocalRuntime:
    settings: Settings
    sandbox: SandboxSettings | None = None
    relay: Relay | None = None
    build: Callable[[Settings], Relay] = build_relay
    api_keys: tuple[str, ...] = ()
    admin_keys: tuple[str, ...] = ()
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _sandbox_server: BackgroundServer | None = None
    _engine: SandboxEngine | None = None
    _webhooks: WebhookDeliverer | None = None

    def start(self) -> LocalRuntime:
        settings = self.settings
        if settings.uses_sandbox and settings.evolink_base_url == DEFAULT_EVOLINK_URL:
            settings = self._start_sandbox(settings)
        self.api_keys, self.admin_keys = settings.api_keys, settings.admin_keys
        if not settings.api_keys and not settings.admin_keys:  # embedded defaults: one generated admin key
            self.admin_keys = (local_secret(settings.data_dir / "api-key", 24),)
        self.settings = settings
        self.relay = self.build(settings)
        self.relay.media_processes = _media_processes(settings)
        if self.relay.media_processes is not None:
            self.relay.closers.append(self.relay.media_processes.close)
        self._webhooks = build_deliverer(settings)
        for name in self._webhooks.names:
            loop = partial(run_webhook_loop, self._webhooks, name, self.relay.bus.subscriber(name), self._stop,
                           wait=1.0)
            self._spawn(loop, f"webhook-{name}")
        for index in range(max(1, settings.worker_concurrency)):
            self._spawn(self._work_loop, f"ingest-{index}")
        self._spawn(self._reconcile_loop, "reconciler")
        self._spawn(self._gc_loop, "gc")
        return self

    def _start_sandbox(self, settings: Settings) -> Settings:
        sandbox = (self.sandbox or SandboxSettings.from_env()).with_(data_dir=settings.data_dir / "sandbox")
        if settings.price_table is not None:  # the sandbox bills by the relay's own table
            sandbox = sandbox.with_(prices=load_price_table(settings.price_table))
        self._engine = SandboxEngine(sandbox)
        remembered = _remembered_port(sandbox.data_dir / SANDBOX_PORT_FILE)
        port = remembered if remembered not in (None, settings.port) and _bindable(remembered) else free_port()
        self._engine.advertise(f"http://{SANDBOX_HOST}:{port}")
        self._engine.start()
        url = self._serve_sandbox(port)
        assert self._sandbox_server is not None
        _remember_port(sandbox.data_dir / SANDBOX_PORT_FILE, self._sandbox_server.port)
        if remembered is not None and self._sandbox_server.port != remembered:
            log.warning("sandbox.port_changed", previous_port=remembered, url=url,
                        note="the port the sandbox used before is taken; results of earlier tasks are "
                             "served on the new address")
        log.info("sandbox.started", url=url, speed=sandbox.speed,
                 note="EvoLink look-alike in-process; set EVOLINK_API_KEY to use EvoLink")
        return settings.with_(evolink_base_url=url)

    def _serve_sandbox(self, port: int) -> str:
        """Serve the sandbox on ``port``; on a fresh port if another process takes it first."""
        assert self._engine is not None
        app = create_sandbox_app(self._engine)
        try:
            self._sandbox_server = BackgroundServer(app, host=SANDBOX_HOST, port=port)
            return self._sandbox_server.start()
        except RuntimeError:
            self._sandbox_server = BackgroundServer(app, host=SANDBOX_HOST)
            self._engine.advertise(self._sandbox_server.url)
            return self._sandbox_server.start()

    def app(self) -> Starlette:
        assert self.relay is not None, "start() first"
        keys = ApiKeys(self.api_keys, admins=self.admin_keys, store=self.relay.keys)
        return create_app(self.relay, keys, extra_routes=dashboard_routes(self.relay, keys))

    @property
    def first_key(self) -> str:
        """A key this relay accepts, bare (the generated admin key on embedded defaults)."""
        entry = (self.admin_keys or self.api_keys)[0]
        return entry.partition(":")[2] if ":" in entry else entry

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

    def _gc_loop(self) -> None:
        """The clean-up pass a minute after start (a relay restarted often still cleans up), then every
        ``RELAY_GC_EVERY`` seconds."""
        assert self.relay is not None
        event_log, close_log = build_event_log(self.settings, self.relay.clock)
        try:
            wait = min(GC_FIRST_AFTER, self.settings.gc_every)
            while not self._stop.wait(wait):
                try:
                    collect_garbage(self.relay, now=self.relay.clock(), event_log=event_log)
                except Exception:
                    log.exception("gc.failed")
                wait = self.settings.gc_every
        finally:
            close_log()

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


def _media_processes(settings: Settings) -> MediaProcesses | None:
    """The child processes ``serve`` reads stored videos in (``RELAY_MEDIA_PROCESSES``, one per ingest worker by
    default); ``None`` for none, or where PyAV is not installed."""
    count = settings.worker_concurrency if settings.media_processes is None else settings.media_processes
    return MediaProcesses(count) if count > 0 and media_reader_available() else None


def _remembered_port(path: Path) -> int | None:
    """The port written at ``path`` by an earlier start; None if there is none (or it is unreadable)."""
    try:
        port = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _remember_port(path: Path, port: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_text(f"{port}\n", encoding="ascii")
    temp.replace(path)


def _bindable(port: int | None) -> bool:
    """Whether a server could listen on ``port`` now (``SO_REUSEADDR`` as uvicorn sets it, so the
    connections a killed process left in TIME_WAIT do not count as taking it)."""
    if port is None:
        return False
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((SANDBOX_HOST, port))
        except OSError:
            return False
    return True
