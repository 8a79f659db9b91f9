"""The processes of ``bench/pipeline.py``: the relay, the sandbox alone and a trivial callback receiver,
each under ``uvicorn.run`` and wrapped so the driver can read when callbacks arrived
(``GET /bench/arrivals``) and how much CPU each thread group used (``GET /bench/threads``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["API_KEY", "CALLBACK_PREFIX", "THREAD_GROUPS", "child_cpu", "cpu_by_group", "serve_receiver", "serve_relay",
           "serve_sandbox", "thread_cpu"]

API_KEY = "bench-relay-key-0123456789"
CALLBACK_PREFIX = "/v1/callbacks/evolink/"


# --- CPU by thread ----------------------------------------------------------------------------
THREAD_GROUPS = (("ingest-", "ingest"), ("lease-", "ingest"), ("MainThread", "api"), ("AnyIO", "api"),
                 ("sandbox-", "sandbox"), ("uvicorn-", "sandbox"))
"""Thread name prefix → what the thread does in the relay process: the ingest workers (and their lease
keepers); the API (uvicorn's event loop in the main thread, and the pool that runs the submit use case);
the in-process sandbox (its server thread, scheduler, render and callback pools). Other threads: "other"."""


def child_cpu(pid: int) -> float:
    """CPU seconds (user and system) process ``pid`` used so far, from ``/proc``; 0 if it has ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(children: Callable[[], list[int]] = list) -> dict[str, Any]:
    """This process's CPU seconds so far, each live Python thread's, and each child's listed by ``children``
    (the relay's media reader processes): ``{"process": s, "threads": {ident: [group, s]}, "children":
    {pid: s}}``. CPU of threads that ended, and of native threads (FFmpeg's decoders), is only in the
    process's figure."""
    threads: dict[str, list[Any]] = {}
    for thread in threading.enumerate():
        try:
            seconds = time.clock_gettime(time.pthread_getcpuclockid(thread.ident or 0))
        except (OSError, AttributeError):  # ended meanwhile, or no per-thread clocks here
            continue
        group = next((name for prefix, name in THREAD_GROUPS if thread.name.startswith(prefix)), "other")
        threads[str(thread.ident)] = [group, seconds]
    return {"process": time.process_time(), "threads": threads,
            "children": {str(pid): child_cpu(pid) for pid in children()}}


def cpu_by_group(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """CPU seconds between two :func:`thread_cpu` snapshots by group; what no live thread accounts for is
    ``ended_or_native``, and the media reader processes are ``media_processes``."""
    groups: dict[str, float] = {}
    for ident, (group, seconds) in after["threads"].items():
        groups[group] = groups.get(group, 0.0) + seconds - before["threads"].get(ident, [group, 0.0])[1]
    groups["ended_or_native"] = after["process"] - before["process"] - sum(groups.values())
    if after.get("children"):
        groups["media_processes"] = sum(seconds - before.get("children", {}).get(pid, 0.0)
                                        for pid, seconds in after["children"].items())
    return groups


# --- server roles ------------------------------------------------------------------------------
def _recording(app: Any, arrivals: dict[str, float], prefix: str, key: Callable[[str, bytes], str] | None = None,
               answer: bool = False, children: Callable[[], list[int]] = list) -> Any:
    """ASGI wrapper: note the first arrival per id under ``prefix``; ``GET /bench/arrivals`` lists them,
    ``GET /bench/threads`` gives :func:`thread_cpu` (with the ``children`` it names)."""
    from starlette.responses import JSONResponse, Response

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path in ("/bench/arrivals", "/bench/threads"):
            await JSONResponse(arrivals if path == "/bench/arrivals" else thread_cpu(children))(scope, receive, send)
            return
        if scope["type"] == "http" and path.startswith(prefix):
            arrivals.setdefault(path[len(prefix):], time.time())
            if answer:
                await Response(status_code=200)(scope, receive, send)
                return
        await app(scope, receive, send)

    return wrapped


def serve_relay(port: int, data_dir: Path, speed: float, workers: int, media_processes: int | None = None) -> None:
    """The relay as ``seedance-relay serve`` runs it, with callback arrivals noted; ``media_processes`` is
    ``RELAY_MEDIA_PROCESSES`` (``None``: the default)."""
    import uvicorn

    from handlers.app.runtime import LocalRuntime
    from handlers.app.settings import Settings
    from handlers.base.logs import configure
    from handlers.sandbox.settings import SandboxSettings

    settings = Settings.from_env({"RELAY_DATA_DIR": str(data_dir), "RELAY_PORT": str(port), "RELAY_API_KEYS": API_KEY,
                                  "RELAY_WORKERS": str(workers)})
    if media_processes is not None:
        settings = settings.with_(media_processes=media_processes)
    configure(settings.log_level, "json")
    runtime = LocalRuntime(settings, sandbox=SandboxSettings(speed=speed)).start()
    assert runtime.relay is not None
    readers = runtime.relay.media_processes
    try:
        uvicorn.run(_recording(runtime.app(), {}, CALLBACK_PREFIX, children=lambda: readers.pids if readers else []),
                    host="127.0.0.1", port=port, log_level="warning")
    finally:
        runtime.stop()


def serve_sandbox(port: int, data_dir: Path, speed: float) -> None:
    """The sandbox alone, as ``seedance-relay sandbox`` runs it."""
    import uvicorn

    from handlers.base.logs import configure
    from handlers.sandbox.app import create_sandbox_app
    from handlers.sandbox.engine import SandboxEngine
    from handlers.sandbox.settings import SandboxSettings

    configure("info", "json")
    engine = SandboxEngine(SandboxSettings(speed=speed, data_dir=data_dir)).start()
    try:
        uvicorn.run(create_sandbox_app(engine), host="127.0.0.1", port=port, log_level="warning")
    finally:
        engine.stop()


def serve_receiver(port: int) -> None:
    """A trivial callback receiver: 200 for every POST under ``/cb/``, arrival noted."""
    import uvicorn
    from starlette.applications import Starlette

    uvicorn.run(_recording(Starlette(), {}, "/cb/", answer=True), host="127.0.0.1", port=port, log_level="warning")
