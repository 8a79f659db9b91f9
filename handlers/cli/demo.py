"""``seedance-relay demo``: the request document's three-modality example, end to end, then a two-shot
storyboard whose second shot starts from the first shot's last frame, joined into one MP4."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from handlers.adapters.local import SqliteEventBus
from handlers.app.runtime import LocalRuntime
from handlers.app.settings import Settings
from handlers.base.logs import configure
from handlers.net.server import BackgroundServer, free_port
from handlers.sandbox.settings import SandboxSettings

__all__ = ["DEMO_STORYBOARD", "SEED_EXAMPLE", "demo"]

SEED_EXAMPLE: dict[str, Any] = {
    "model": "seedance-2.0-reference-to-video",
    "prompt": "Replicate video 1's first-person perspective and camera pacing. Use audio 1 as the "
              "soundtrack for the entire video. Scene: a young rider weaving through a rain-soaked city "
              "street at night, neon reflections on wet asphalt.",
    "image_urls": ["https://example.com/rider-style.jpg"],
    "video_urls": ["https://example.com/pov-reference.mp4"],
    "audio_urls": ["https://example.com/synthwave-bgm.mp3"],
    "duration": 10,
    "quality": "720p",
    "aspect_ratio": "16:9",
}
FINAL = {"published", "failed", "cancelled", "rejected", "expired"}
DEMO_STORYBOARD: dict[str, Any] = {
    "assemble": True,
    "metadata": {"demo": True},
    "shots": [
        {"id": "ride", "request": {"model": "seedance-2.0-text-to-video", "duration": 5, "quality": "480p",
                                   "aspect_ratio": "16:9", "prompt": "A rider weaves through a neon-lit street at "
                                                                     "night, rain on the asphalt."}},
        {"id": "arrival", "request": {"model": "seedance-2.0-image-to-video", "duration": 5, "quality": "480p",
                                      "aspect_ratio": "16:9", "image_urls": ["shot://ride/last-frame"],
                                      "prompt": "From this frame, the rider slows and stops under a flickering "
                                                "sign."}},
    ],
}


@click.command(short_help="The seed's example end to end, then a two-shot storyboard joined into one MP4.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".relay/demo"),
              show_default=True, help="Where the demo keeps its jobs and videos.")
@click.option("--speed", type=click.FloatRange(min=1.0), default=30.0, show_default=True,
              help="Sandbox speed-up (180 s of nominal generation takes 6 s at 30).")
@click.option("--timeout", type=click.FloatRange(min=1.0), default=120.0, show_default=True,
              help="Seconds to wait for the job before giving up.")
def demo(data_dir: Path, speed: float, timeout: float) -> None:
    """Submit the seed's image + video + audio example to the sandbox and follow it to S3-style storage; then run
    a two-shot storyboard (the second shot starts from the first one's last frame) and join the shots."""
    configure("warning")
    console = Console(stderr=True)
    port = free_port()
    settings = Settings.from_env({"RELAY_DATA_DIR": str(data_dir), "RELAY_PORT": str(port),
                                  "RELAY_RECONCILE_EVERY": "5"})
    runtime = LocalRuntime(settings, sandbox=SandboxSettings(speed=speed)).start()
    server = BackgroundServer(runtime.app(), port=port)
    try:
        url = server.start()
        console.print(f"[bold]relay[/] {url}  ·  [bold]sandbox[/] {runtime.settings.evolink_base_url} "
                      "(EvoLink look-alike, no credits spent)")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {runtime.first_key}"}) as api:
            job = _submit(api)
            console.print(f"submitted [bold]{job['id']}[/] → task {job['task_id']}")
            job = _follow(api, job["id"], console, timeout)
            _report(job, runtime, console)
            board = _storyboard(api, console, timeout) if job["status"] == "published" else None
        if board is not None:
            _report_storyboard(board, runtime, console)
    finally:
        server.stop()
        runtime.stop()
    if job["status"] != "published" or board is None or board["status"] != "completed":
        raise SystemExit(1)


def _submit(api: httpx.Client) -> dict[str, Any]:
    response = api.post("/v1/jobs", json={**SEED_EXAMPLE, "metadata": {"demo": True}},
                        headers={"Idempotency-Key": f"demo-{uuid.uuid4().hex}"})
    response.raise_for_status()
    job: dict[str, Any] = response.json()
    return job


def _follow(api: httpx.Client, job_id: str, console: Console, timeout: float) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("generating", total=100)
        while True:
            job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
            progress.update(bar, completed=job["progress"], description=job["status"])
            if job["status"] in FINAL or time.monotonic() > deadline:
                return job
            time.sleep(0.2)


def _report(job: dict[str, Any], runtime: LocalRuntime, console: Console) -> None:
    console.print(f"job {job['id']}: [bold]{job['status']}[/]" + (f" ({job['error']})" if job["error"] else ""))
    for output in job["outputs"]:
        console.print(f"video  {output['uri']}  ({output['size']:,} bytes, sha256 {output['sha256'][:16]}…)")
    database = runtime.settings.data_dir / "relay.sqlite3"
    for event in _job_events(database, job["id"]):
        console.print(f"event  {event['type']} id={event['id']} on the local bus ({database})")
        click.echo(json.dumps(event, indent=2))


def _storyboard(api: httpx.Client, console: Console, timeout: float) -> dict[str, Any]:
    """Create :data:`DEMO_STORYBOARD` and follow it, one progress line per shot, until it ends."""
    response = api.post("/v1/storyboards", json=DEMO_STORYBOARD,
                        headers={"Idempotency-Key": f"demo-{uuid.uuid4().hex}"})
    response.raise_for_status()
    board: dict[str, Any] = response.json()
    console.print(f"storyboard [bold]{board['id']}[/]: {len(board['shots'])} shots, "
                  "the second starts from the first one's last frame")
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=console) as progress:
        bars = {shot["id"]: progress.add_task(shot["id"], total=100) for shot in board["shots"]}
        while board["status"] not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            board = api.get(f"/v1/storyboards/{board['id']}").json()
            for shot in board["shots"]:
                done = 100 if shot["status"] in ("stored", "published") else shot.get("progress") or 0
                progress.update(bars[shot["id"]], completed=done, description=f"{shot['id']:<8} {shot['status']}")
    return board


def _report_storyboard(board: dict[str, Any], runtime: LocalRuntime, console: Console) -> None:
    error = board.get("error") or {}
    console.print(f"storyboard {board['id']}: [bold]{board['status']}[/]"
                  + (f" (shot {error.get('shot')}: {error.get('code')})" if error else ""))
    for output in board["outputs"]:
        media = output.get("media") or {}
        how = (media.get("assembly") or {}).get("method", "?")
        console.print(f"joined {output['uri']}  ({media.get('duration', '?')} s, {how}, poster "
                      f"{(output.get('frames') or {}).get('poster', '-')})")
    database = runtime.settings.data_dir / "relay.sqlite3"
    for event in _job_events(database, board["id"]):
        console.print(f"event  {event['type']} id={event['id']} on the local bus")
        click.echo(json.dumps(event, indent=2))


def _job_events(database: Path, job_id: str) -> list[dict[str, Any]]:
    """The events published about ``job_id``, read from the local bus's log (the demo always runs locally)."""
    log = SqliteEventBus(database, {})
    try:
        return [event for _, event in log.events(limit=1000) if event["subject"] == job_id]
    finally:
        log.close()
