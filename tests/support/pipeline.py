"""The whole local pipeline over real sockets: sandbox server, relay runtime, API server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from handlers.app.runtime import LocalRuntime
from handlers.app.settings import Settings
from handlers.net.server import BackgroundServer, free_port
from tests.support.servers import RunningSandbox, running_sandbox, wait_until

API_KEY = "relay-test-key-0123456789"
FINAL = {"published", "failed", "cancelled", "rejected", "expired"}
REQUEST: dict[str, Any] = {
    "model": "seedance-2.0-reference-to-video", "prompt": "Use image 1 as the first frame, audio 1 as music",
    "image_urls": ["https://example.com/style.png"], "audio_urls": ["https://example.com/bgm.mp3"],
    "duration": 4, "quality": "480p", "aspect_ratio": "16:9",
}


@dataclass
class Relay:
    url: str
    runtime: LocalRuntime
    server: BackgroundServer
    api: httpx.Client

    def stop(self) -> None:
        self.api.close()
        self.server.stop()
        self.runtime.stop()


@dataclass
class Pipeline:
    data_dir: Path
    sandbox: RunningSandbox
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    relay: Relay | None = None

    def start_relay(self) -> Relay:
        settings = Settings.from_env({**self.env, "RELAY_PORT": str(self.port)})
        runtime = LocalRuntime(settings).start()
        server = BackgroundServer(runtime.app(), port=self.port)
        url = server.start()
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
        self.relay = Relay(url, runtime, server, api)
        return self.relay

    def stop_relay(self) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None

    @property
    def api(self) -> httpx.Client:
        assert self.relay is not None, "relay is not running"
        return self.relay.api

    def submit(self, request: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        response = self.api.post("/v1/jobs", json=request or REQUEST, headers=headers)
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.api.get(f"/v1/jobs/{job_id}").json()
        return job

    def wait_final(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        job: dict[str, Any] = wait_until(lambda: (j := self.job(job_id))["status"] in FINAL and j, timeout,
                                         f"job {job_id} to finish", interval=0.05)
        return job

    def events(self) -> list[dict[str, Any]]:
        assert self.relay is not None and self.relay.runtime.relay is not None
        bus = self.relay.runtime.relay.bus
        return [event for _, event in bus.events(limit=10_000)]  # type: ignore[attr-defined]

    def subscriber_messages(self, name: str = "default") -> list[dict[str, Any]]:
        assert self.relay is not None and self.relay.runtime.relay is not None
        queue = self.relay.runtime.relay.bus.subscriber(name)
        messages = queue.receive(max_messages=10)
        bodies = []
        while messages:
            bodies += [dict(m.body) for m in messages]
            for message in messages:
                queue.ack(message)
            messages = queue.receive(max_messages=10)
        return bodies

    def blob_files(self) -> list[Path]:
        return sorted(p for p in (self.data_dir / "blobs").rglob("*") if p.is_file() and p.suffix == ".mp4")


@contextmanager
def running_pipeline(tmp_path: Path, *, relay_env: dict[str, str] | None = None,
                     **sandbox: Any) -> Iterator[Pipeline]:
    """Sandbox (speed 400 unless given) and relay, each on its own loopback port."""
    sandbox.setdefault("speed", 400.0)
    with running_sandbox(tmp_path / "sandbox", **sandbox) as box:
        env = {"RELAY_DATA_DIR": str(tmp_path / "relay"), "RELAY_API_KEYS": API_KEY,
               "EVOLINK_BASE_URL": box.url, "RELAY_RECONCILE_EVERY": "0.5", "RELAY_RECONCILE_GRACE": "1",
               "RELAY_CALLBACK_SECRET": "k1:" + "s" * 32, **(relay_env or {})}
        pipeline = Pipeline(tmp_path / "relay", box, env)
        pipeline.start_relay()
        try:
            yield pipeline
        finally:
            pipeline.stop_relay()


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
