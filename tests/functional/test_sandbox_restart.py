"""The in-process sandbox across restarts: same port when it can, result URLs that reach it when it cannot."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from handlers.app.runtime import SANDBOX_PORT_FILE, LocalRuntime
from handlers.app.settings import Settings
from handlers.net.server import BackgroundServer, free_port
from handlers.sandbox.app import create_sandbox_app
from handlers.sandbox.engine import SandboxEngine
from handlers.sandbox.settings import SandboxSettings
from tests.support.servers import running_sandbox, wait_until

KEY = {"Authorization": "Bearer sk-evo-test-key"}
REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse", "duration": 4, "quality": "480p"}


def _results(client: httpx.Client, task_id: str) -> list[str]:
    """The result URLs of ``task_id`` once it has completed."""
    def done() -> list[str] | None:
        body = client.get(f"/v1/tasks/{task_id}", headers=KEY).json()
        return [str(url) for url in body["results"]] if body["status"] == "completed" else None

    found: list[str] = wait_until(done, 20, f"task {task_id} to complete")
    return found


def test_an_advertised_sandbox_gives_earlier_tasks_results_on_its_new_address(tmp_path: Path) -> None:
    """A task completed before a restart is answered, after it, with a result URL on the new port that downloads."""
    with running_sandbox(tmp_path, speed=400.0) as before, httpx.Client(base_url=before.url) as client:
        task_id = client.post("/v1/videos/generations", json=REQUEST, headers=KEY).json()["id"]
        (old_url,) = _results(client, task_id)
    engine = SandboxEngine(SandboxSettings(data_dir=tmp_path, speed=400.0))
    server = BackgroundServer(create_sandbox_app(engine))
    engine.advertise(server.url)
    with server as url, httpx.Client(base_url=url) as client:
        engine.start()
        try:
            (new_url,) = _results(client, task_id)
            video = httpx.get(new_url)
        finally:
            engine.stop()
    assert urlsplit(new_url).netloc == urlsplit(url).netloc != urlsplit(old_url).netloc
    assert (urlsplit(new_url).path, urlsplit(new_url).query) == (urlsplit(old_url).path, urlsplit(old_url).query)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4" and len(video.content) > 0


def _runtime(tmp_path: Path) -> LocalRuntime:
    settings = Settings.from_env({"RELAY_DATA_DIR": str(tmp_path), "RELAY_PORT": str(free_port()),
                                  "RELAY_API_KEYS": "key-1", "RELAY_CALLBACK_SECRET": "k1:" + "s" * 32})
    return LocalRuntime(settings, sandbox=SandboxSettings(speed=400.0)).start()


def test_the_in_process_sandbox_serves_on_the_port_it_used_before(tmp_path: Path) -> None:
    """A restarted runtime's sandbox listens where the last one did, as written in the sandbox's port file."""
    first = _runtime(tmp_path)
    url = first.settings.evolink_base_url
    first.stop()
    second = _runtime(tmp_path)
    try:
        assert second.settings.evolink_base_url == url
        assert httpx.get(f"{url}/healthz").json() == {"ok": True, "sandbox": True}
    finally:
        second.stop()
    assert (tmp_path / "sandbox" / SANDBOX_PORT_FILE).read_text().strip() == url.rsplit(":", 1)[1]


def test_the_in_process_sandbox_moves_when_its_port_is_taken_and_remembers_the_new_one(tmp_path: Path) -> None:
    """With its old port taken the sandbox starts on another, and writes that one down for next time."""
    first = _runtime(tmp_path)
    old_port = int(first.settings.evolink_base_url.rsplit(":", 1)[1])
    first.stop()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        second = _runtime(tmp_path)
        new_port = int(second.settings.evolink_base_url.rsplit(":", 1)[1])
        second.stop()
    assert new_port != old_port
    assert int((tmp_path / "sandbox" / SANDBOX_PORT_FILE).read_text()) == new_port


def test_an_unreadable_port_file_means_a_fresh_port(tmp_path: Path) -> None:
    """A port file holding nonsense is ignored: the sandbox starts on a free port and writes that one."""
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "sandbox" / SANDBOX_PORT_FILE).write_text("not a port")
    runtime = _runtime(tmp_path)
    port = runtime.settings.evolink_base_url.rsplit(":", 1)[1]
    runtime.stop()
    assert (tmp_path / "sandbox" / SANDBOX_PORT_FILE).read_text().strip() == port
