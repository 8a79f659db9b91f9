"""Real servers for tests: the sandbox on a loopback port and a programmable webhook receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handlers.net.server import BackgroundServer
from handlers.sandbox.app import create_sandbox_app
from handlers.sandbox.engine import SandboxEngine
from handlers.sandbox.settings import SandboxSettings


@dataclass
class RunningSandbox:
    url: str
    engine: SandboxEngine


@contextmanager
def running_sandbox(data_dir: Path, **settings: Any) -> Iterator[RunningSandbox]:
    """The sandbox over real HTTP on 127.0.0.1; ``settings`` override SandboxSettings fields."""
    engine = SandboxEngine(SandboxSettings(data_dir=data_dir, **settings)).start()
    server = BackgroundServer(create_sandbox_app(engine))
    try:
        yield RunningSandbox(server.start(), engine)
    finally:
        server.stop()
        engine.stop()


@dataclass
class Received:
    path: str
    query: str
    body: bytes
    at: float


@dataclass
class Receiver:
    """Records every POST; answers with the next planned status (200 once the plan runs out)."""

    plan: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                self.received.append(Received(request.url.path, request.url.query, body, time.monotonic()))
                status = self.plan.pop(0) if self.plan else 200
            return JSONResponse({"status": status}, status_code=status)

        return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        return wait_until(lambda: self.received if len(self.received) >= count else None, timeout,
                          f"{count} callbacks (got {len(self.received)})")


@contextmanager
def running_receiver(plan: list[int] | None = None) -> Iterator[Receiver]:
    receiver = Receiver(plan=list(plan or []))
    server = BackgroundServer(receiver.app())
    receiver.url = server.start()
    try:
        yield receiver
    finally:
        server.stop()


def wait_until(probe: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
