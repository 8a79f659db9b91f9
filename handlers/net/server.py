"""Serving an ASGI app under uvicorn with the relay's connection limits.

:func:`server_config` is the one place the uvicorn configuration is made (``serve``, the
background servers of tests and the in-process sandbox); :func:`bind` claims the port
before anything starts, so a taken port is one clear error.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import uvicorn

from handlers.base.errors import ConfigurationError
from handlers.net.httpguard import ServerLimits, guarded_protocol

__all__ = ["BackgroundServer", "ReadyServer", "ServerLimits", "bind", "free_port", "server_config",
           "tune_gc_for_serving"]

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


def bind(host: str, port: int, *, flag: str = "--port") -> socket.socket:
    """A listening socket on ``host:port``; ``ConfigurationError`` naming ``flag`` when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (socket.gaierror, UnicodeError) as exc:
        sock.close()
        raise ConfigurationError(f"{host!r} is not a host name or address; pass --host") from exc
    except OSError as exc:
        sock.close()
        shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(f"{shown} is in use; pass {flag} (or stop what listens there)") from exc
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigurationError(f"{host} is not an address of this machine; pass --host") from exc
        if exc.errno == errno.EACCES:
            raise ConfigurationError(f"{shown} needs privileges to bind; pass {flag} with a port above 1023") from exc
        raise ConfigurationError(f"cannot listen on {shown}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def server_config(app: Any, *, host: str = "127.0.0.1", port: int = 0, limits: ServerLimits | None = None,
                  log_level: str = "warning", timeout_keep_alive: int = 5,
                  lifespan: Literal["auto", "on", "off"] = "auto") -> uvicorn.Config:
    """uvicorn's configuration with the relay's limits (httptools parser, guarded).

    Access lines are off: they would carry callback tokens past the redactor.
    """
    limits = limits or ServerLimits()
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan=lifespan,
                          timeout_keep_alive=timeout_keep_alive, http=guarded_protocol(limits),
                          limit_concurrency=limits.max_connections + 1)  # the guard refuses extra connections


class ReadyServer(uvicorn.Server):
    """A uvicorn server that calls ``on_ready`` once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_ready is not None:
            self._on_ready()

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until stopped; a Ctrl-C that stopped it ends the run quietly, as ``uvicorn.run`` does."""
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the signal it shut down on
            super().run(sockets=sockets)


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread owns signals
        return None


class BackgroundServer:
    """``with BackgroundServer(app) as url: ...`` serves ``app`` on a real socket."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning", limits: ServerLimits | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = server_config(app, host=host, port=self.port, limits=limits, log_level=log_level,
                               lifespan="on", timeout_keep_alive=30)
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
