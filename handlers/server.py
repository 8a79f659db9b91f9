"""Run an ASGI app under uvicorn on a background thread (tests, in-process sandbox)."""

from __future__ import annotations

import gc
import socket
import threading
import time
from typing import Any

import uvicorn

__all__ = ["BackgroundServer", "free_port", "tune_gc_for_serving"]

GC_YOUNG_THRESHOLD = 7000


def tune_gc_for_serving() -> None:
    """Set the cyclic garbage collector up for a long-running server; call once the app is built.

    Under concurrent load the objects of the requests in flight (uvicorn's and Starlette's, the
    callbacks waiting for their group commit) outnumber the default young-generation threshold
    (700), so the collector runs every few requests though they leave no cycles, and the objects
    it promotes then die old and trigger full collections of the whole heap (~15 ms on the event
    loop each). Freezing what startup built keeps it out of every later collection, and a young
    threshold of :data:`GC_YOUNG_THRESHOLD` lets a burst of requests finish before one runs.
    """
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread owns signals
        return None


class BackgroundServer:
    """``with BackgroundServer(app) as url: ...`` serves ``app`` on a real socket."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning") -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level=log_level,
                                access_log=False, lifespan="on", timeout_keep_alive=30)
        self._server = _ThreadServer(config)
        self._thread = threading.Thread(target=self._server.run, name=f"uvicorn-{self.port}",
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
