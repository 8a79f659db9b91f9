"""The command line as people run it: real processes, real ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

from handlers.cli import main
from handlers.net.server import free_port
from handlers.sandbox.media import render_image
from tests.support.media_server import MediaServer
from tests.support.servers import wait_until

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).with_name("seedance-relay"))
SEED_IMAGES_ONLY = {
    "model": "seedance-2.0-reference-to-video",
    "prompt": "The overall art style references the color palette and texture of the 3 provided images.",
    "image_urls": ["https://example.com/style-ref-1.jpg", "https://example.com/style-ref-2.jpg",
                   "https://example.com/style-ref-3.jpg"],
    "duration": 8, "aspect_ratio": "16:9",
}


@contextmanager
def process(*args: str, env: dict[str, str], log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run a command in the background (output to ``log``); interrupt it like Ctrl-C on exit."""
    with open(log or os.devnull, "wb") as out:
        proc = subprocess.Popen([EXE, *args], env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def run_validate(tmp_path: Path, body: object, *args: str) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "request.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    result = CliRunner().invoke(main, ["validate", str(path), *args])
    return result.exit_code, json.loads(result.output)


def test_validate_exits_0_for_a_valid_request(tmp_path: Path) -> None:
    code, report = run_validate(tmp_path, SEED_IMAGES_ONLY)
    assert (code, report["ok"], report["errors"]) == (0, True, [])


def test_validate_exits_1_and_lists_every_error(tmp_path: Path) -> None:
    code, report = run_validate(tmp_path, {**SEED_IMAGES_ONLY, "duration": 3, "image_urls": ["ftp://x/y.gif"] * 10})
    fields = {e["field"] for e in report["errors"]}
    assert code == 1 and report["ok"] is False and {"duration", "image_urls", "image_urls[0]"} <= fields


@pytest.mark.parametrize("content", ["{not json", None])
def test_validate_exits_2_when_the_input_cannot_be_read(tmp_path: Path, content: str | None) -> None:
    if content is None:
        result = CliRunner().invoke(main, ["validate", str(tmp_path / "missing.json")])
        assert result.exit_code == 2
        return
    code, report = run_validate(tmp_path, content)
    assert code == 2 and report["errors"][0]["code"] == "invalid_json"


def test_validate_probe_reads_the_real_media(tmp_path: Path) -> None:
    with MediaServer() as media:
        small = media.add("/small.png", render_image(width=200, height=200), content_type="image/png")
        good = media.add("/good.png", render_image(width=640, height=480), content_type="image/png")
        body = {**SEED_IMAGES_ONLY, "image_urls": [good, small]}
        code, report = run_validate(tmp_path, body, "--probe", "--allow-http", "--allow-private")
    assert code == 1 and [e["field"] for e in report["errors"]] == ["image_urls[1]"]
    assert report["media"][0]["width"] == 640


def test_the_sandbox_command_serves_evolinks_api(tmp_path: Path) -> None:
    port = free_port()
    with process("sandbox", "--port", str(port), "--data-dir", str(tmp_path), env={"SANDBOX_SPEED": "300"}):
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: healthy(url), 20, "the sandbox to listen")
        headers = {"Authorization": "Bearer sk-evo-cli"}
        task = httpx.post(f"{url}/v1/videos/generations", headers=headers,
                          json={**SEED_IMAGES_ONLY, "duration": 4, "quality": "480p"}).json()
        final = wait_until(lambda: (t := httpx.get(f"{url}/v1/tasks/{task['id']}", headers=headers).json())
                           ["status"] == "completed" and t, 20, "the task")
    assert final["results"][0].startswith(url)


def test_serve_runs_the_whole_pipeline_and_events_tail_prints_the_event(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "relay"
    env = {"RELAY_DATA_DIR": str(data), "RELAY_PORT": str(port), "SANDBOX_SPEED": "300"}
    env.pop("EVOLINK_API_KEY", None)
    with process("serve", env=env, log=tmp_path / "serve.log") as proc:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: healthy(url), 30, "serve to listen")
        key = (data / "api-key").read_text().strip()
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})
        job = api.post("/v1/jobs", json={**SEED_IMAGES_ONLY, "duration": 4, "quality": "480p"}).json()
        final = wait_until(lambda: (j := api.get(f"/v1/jobs/{job['id']}").json())["status"] == "published" and j,
                           30, "the job")
        api.close()
        tail = subprocess.run([EXE, "events", "tail", "--data-dir", str(data)], capture_output=True, text=True,
                              check=True, timeout=30)
        unknown = subprocess.run([EXE, "events", "tail", "--data-dir", str(data), "--subscriber", "nope"],
                                 capture_output=True, text=True, timeout=30)
    output = (tmp_path / "serve.log").read_text()
    [event] = [json.loads(line) for line in tail.stdout.splitlines()]
    stored = [{k: v for k, v in o.items() if k not in ("url", "frame_urls")} for o in final["outputs"]]  # API routes
    assert event["subject"] == final["id"] and event["data"]["outputs"] == stored
    assert unknown.returncode == 2 and "nope" in unknown.stderr
    assert proc.returncode == 0 and "sandbox" in output and key not in output


def _json_documents(text: str) -> list[Any]:
    """Every JSON document printed one after another in ``text``."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while (at := len(text) - len(text[at:].lstrip())) < len(text):
        document, at = decoder.raw_decode(text, at)
        documents.append(document)
    return documents


def test_demo_runs_a_job_and_a_two_shot_storyboard_well_under_a_minute(tmp_path: Path) -> None:
    """The single job's completed event, then the storyboard's: its joined MP4 lasts the two shots (5 s each)."""
    from handlers.media.facts import read_facts

    result = subprocess.run([EXE, "demo", "--data-dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=60, env={k: v for k, v in os.environ.items() if k != "EVOLINK_API_KEY"})
    assert result.returncode == 0, result.stderr
    event, board = _json_documents(result.stdout)
    assert event["type"] == "io.seedance-relay.job.completed"
    assert Path(event["data"]["outputs"][0]["uri"].removeprefix("file://")).stat().st_size > 100_000
    assert board["type"] == "io.seedance-relay.storyboard.completed"
    joined = read_facts(board["data"]["outputs"][0]["uri"].removeprefix("file://"))
    assert abs(joined.duration - 10.0) <= 2 * joined.frame_seconds


def test_validate_accepts_metadata_as_post_v1_jobs_does(tmp_path: Path) -> None:
    """metadata (the relay's own field) is valid; a non-object metadata is invalid as the API says."""
    code, report = run_validate(tmp_path, {**SEED_IMAGES_ONLY, "metadata": {"order": 1}})
    assert (code, report["ok"], report["errors"]) == (0, True, [])
    code, report = run_validate(tmp_path, {**SEED_IMAGES_ONLY, "metadata": [1]})
    assert code == 1 and [(e["field"], e["code"]) for e in report["errors"]] == [
        ("metadata", "invalid_type")]


def test_validate_refuses_a_duplicated_key_as_the_api_does(tmp_path: Path) -> None:
    """The parser of POST /v1/jobs refuses a duplicated key; so does validate (invalid_json, exit 2)."""
    raw = json.dumps(SEED_IMAGES_ONLY)[:-1] + ', "duration": 5}'
    code, report = run_validate(tmp_path, raw)
    assert code == 2 and report["errors"][0]["code"] == "invalid_json"
    assert "duplicate key 'duration'" in report["errors"][0]["message"]


def test_validate_refuses_a_callback_to_a_private_address_and_warns_the_relay_sets_it(tmp_path: Path) -> None:
    """A callback_url to 10.0.0.5 is an error; any callback_url warns that the relay's API sets its own."""
    code, report = run_validate(tmp_path, {**SEED_IMAGES_ONLY, "callback_url": "https://10.0.0.5/cb"})
    assert code == 1 and [e["code"] for e in report["errors"]] == ["private_address"]
    assert [w["code"] for w in report["warnings"]] == ["set_by_relay"]


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


@pytest.mark.parametrize("path", [p for p, c in _commands(main) if isinstance(c, click.Group)])
def test_every_command_listing_shows_a_whole_line_of_help(path: tuple[str, ...]) -> None:
    """In each group's --help (80 columns), every command has a one-line help that click did not cut off."""
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=80)
    listing = result.output.split("Commands:", 1)[1]
    group = main
    for name in path:
        group = group.commands[name]  # type: ignore[attr-defined]
    for name in group.commands:  # type: ignore[attr-defined]
        [line] = [line for line in listing.splitlines() if line.strip().startswith(name + " ")]
        assert "..." not in line and len(line.split(None, 1)) == 2, line


@pytest.mark.parametrize("path", [p for p, _ in _commands(main)], ids=lambda p: " ".join(p) or "main")
def test_every_command_and_option_has_help(path: tuple[str, ...]) -> None:
    """Every command has a help text and every option a help line (shown by --help without error)."""
    command = dict(_commands(main))[path]
    assert command.help and command.help.strip()
    missing = [p.opts[0] for p in command.params if isinstance(p, click.Option) and not p.help]
    assert missing == []
    assert CliRunner().invoke(main, [*path, "--help"]).exit_code == 0


def test_serve_says_ready_only_once_it_accepts_connections_and_prints_the_next_command(tmp_path: Path) -> None:
    """The moment serve.ready is logged, the port answers; the next command to try follows it."""
    port, data = free_port(), tmp_path / "relay"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "EVOLINK_"))}
    env.update({"RELAY_DATA_DIR": str(data), "RELAY_PORT": str(port), "RELAY_LOG_FORMAT": "json"})
    with subprocess.Popen([EXE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        lines = _ready_lines(proc, port)
    output = "".join(lines)
    assert f"relay ready on http://127.0.0.1:{port}; try:" in output
    assert f"RELAY_URL=http://127.0.0.1:{port} RELAY_DATA_DIR={data} seedance-relay submit" in output


def _ready_lines(proc: subprocess.Popen[str], port: int) -> list[str]:
    """serve's output up to two lines past serve.ready, checking the port the moment ready appears."""
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if '"serve.ready"' in line:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass  # accepted at once: the port was bound before "ready"
                break
        lines += [proc.stdout.readline(), proc.stdout.readline()]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    return lines
