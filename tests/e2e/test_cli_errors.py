"""Every command, driven with bad flags, files and settings as a real process: one short error naming
what is wrong and what would be accepted, the README's exit code, and never a traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from handlers.sandbox.media import render_image

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).with_name("seedance-relay"))
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers there


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    says: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


# (name, case): {tmp} in args and env is the test's folder, prepared by ``workdir``.
CASES: dict[str, Case] = {
    "unknown command": Case(("sumbit",), 2, ("No such command 'sumbit'",)),
    "submit metadata not JSON": Case(("submit", "--prompt", "x", "--metadata", "order=1"), 2,
                                     ("--metadata", "must be a JSON object", '{"order": 1}')),
    "submit metadata an array": Case(("submit", "--metadata", "[1]"), 2, ("--metadata", "got array")),
    "submit file not JSON": Case(("submit", "{tmp}/broken.json"), 2,
                                 ("broken.json is not a request", "not valid JSON at line 1")),
    "submit file missing": Case(("submit", "{tmp}/missing.json"), 2, ("missing.json", "does not exist")),
    "submit image of a wrong type": Case(("submit", "--image", "{tmp}/notes.txt"), 2,
                                         ("--image", "notes.txt", ".jpeg, .jpg, .png, .webp")),
    "submit video path missing": Case(("submit", "--video", "{tmp}/nope.mp4"), 2,
                                      ("--video", "neither a URL nor a readable file")),
    "submit duration not a number": Case(("submit", "--duration", "ten"), 2, ("--duration", "'ten' is not")),
    "submit model unknown": Case(("submit", "--model", "sora"), 2, ("--model", "seedance-2.0-text-to-video")),
    "submit relay down": Case(("submit", "--prompt", "x"), 1, ("cannot reach the relay at " + NOWHERE,)),
    "serve backend unknown": Case(("serve",), 2, ("RELAY_BACKEND='foo'", "expected one of local, aws"),
                                  {"RELAY_BACKEND": "foo"}),
    "serve port not a number": Case(("serve",), 2, ("RELAY_PORT='abc'", "expected a whole number"),
                                    {"RELAY_PORT": "abc"}),
    "serve port flag out of range": Case(("serve", "--port", "70000"), 2, ("--port", "1<=x<=65535")),
    "serve log format unknown": Case(("serve",), 2, ("RELAY_LOG_FORMAT='xml'", "auto, json, console"),
                                     {"RELAY_LOG_FORMAT": "xml"}),
    "serve key without public url": Case(("serve",), 2, ("EVOLINK_API_KEY is set", "RELAY_PUBLIC_URL", "https"),
                                         {"EVOLINK_API_KEY": "sk-evo-real"}),
    "serve public url not https": Case(("serve",), 2, ("RELAY_PUBLIC_URL", "'http://relay.example'"),
                                       {"EVOLINK_API_KEY": "sk-evo-real", "RELAY_PUBLIC_URL": "http://relay.example"}),
    "serve host not an address": Case(("serve", "--host", "no such host!"), 2, ("not a host name or address",
                                                                                 "--host")),
    "serve sandbox switch out of range": Case(("serve", "--fail-rate", "2"), 2, ("--fail-rate", "0<=x<=1")),
    "validate file missing": Case(("validate", "{tmp}/missing.json"), 2, ('"unreadable"', "no such file")),
    "validate timeout not a number": Case(("validate", "{tmp}/broken.json", "--timeout", "soon"), 2,
                                          ("--timeout", "'soon' is not")),
    "sandbox speed zero": Case(("sandbox", "--speed", "0"), 2, ("--speed", "x>0")),
    "sandbox bad switch variable": Case(("sandbox",), 2, ("SANDBOX_FAIL_RATE",), {"SANDBOX_FAIL_RATE": "lots"}),
    "events tail unknown subscriber": Case(("events", "tail", "--subscriber", "nobody"), 2,
                                           ("--subscriber", "no subscriber 'nobody'", "default")),
    "events tail no data": Case(("events", "tail", "--data-dir", "{tmp}/empty"), 1, ("no relay data at",)),
    "events tail bad subscribers variable": Case(("events", "tail"), 2, ("RELAY_SUBSCRIBERS",),
                                                 {"RELAY_SUBSCRIBERS": "bad name:*"}),
    "demo speed below one": Case(("demo", "--speed", "0.5"), 2, ("--speed", "x>=1")),
    "infra bootstrap bad setting": Case(("infra", "bootstrap"), 2, ("RELAY_QUEUE_MAX_RECEIVES='many'",),
                                        {"RELAY_QUEUE_MAX_RECEIVES": "many"}),
    "jobs list limit zero": Case(("jobs", "list", "--limit", "0"), 2, ("--limit", "1<=x<=100")),
    "jobs list status unknown": Case(("jobs", "list", "--status", "done"), 2, ("--status", "published")),
    "jobs list relay down": Case(("jobs", "list"), 1, ("cannot reach the relay",)),
    "jobs show relay down": Case(("jobs", "show", "job_x"), 1, ("cannot reach the relay",)),
    "jobs show no id": Case(("jobs", "show"), 2, ("Missing argument 'JOB_ID'",)),
    "dlq list bad backend": Case(("dlq", "list"), 2, ("RELAY_BACKEND='gcp'",), {"RELAY_BACKEND": "gcp"}),
    "dlq redrive unknown queue": Case(("dlq", "redrive", "--queue", "nope"), 2,
                                      ("--queue", "no queue 'nope'", "ingest")),
    "docs generate root missing": Case(("docs", "generate", "--root", "{tmp}/nowhere"), 2, ("--root",
                                                                                            "does not exist")),
}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "broken.json").write_text('{"model": "seedance-2.0-text-to-video",')
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    return tmp_path


def run(args: tuple[str, ...], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "EVOLINK_", "SANDBOX_"))}
    base = {"RELAY_URL": NOWHERE, "RELAY_API_KEY": "cli-test-key", "RELAY_DATA_DIR": str(cwd / "data"),
            "COLUMNS": "80"}
    return subprocess.run([EXE, *args], env={**clean, **base, **env}, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("name", list(CASES))
def test_a_mistake_is_one_clear_error(name: str, workdir: Path) -> None:
    """The error names the flag, file or variable and what would be accepted; no traceback."""
    case = CASES[name]
    args = tuple(a.replace("{tmp}", str(workdir)) for a in case.args)
    done = run(args, case.env, workdir)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode == case.code, output
    for text in case.says:
        assert text in output, output
    assert len(done.stderr.strip().splitlines()) <= 4, done.stderr  # short: usage line, hint, error


def test_validate_output_always_has_ok_errors_and_warnings(workdir: Path) -> None:
    """Missing files, folders, non-JSON and valid files all print the three keys."""
    valid = workdir / "valid.json"
    valid.write_text(json.dumps({"model": "seedance-2.0-text-to-video", "prompt": "a kite", "duration": 4}))
    for path, code in (("missing.json", 2), ("empty", 2), ("broken.json", 2), ("notes.txt", 2), ("valid.json", 0)):
        done = run(("validate", str(workdir / path)), {}, workdir)
        report = json.loads(done.stdout)
        assert done.returncode == code and set(report) == {"ok", "errors", "warnings"}, (path, done.stdout)


def test_a_taken_port_is_one_line_and_exit_2(workdir: Path) -> None:
    """serve on a port something else holds says so before starting anything."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = run(("serve", "--port", str(port)), {}, workdir)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"error: 127.0.0.1:{port} is in use; pass --port" in done.stderr
    assert not (workdir / "data").exists()  # nothing started


def test_a_mistyped_setting_gets_one_warning_with_a_did_you_mean(workdir: Path) -> None:
    """An unknown RELAY_* variable is named once, with the setting it most likely meant."""
    done = run(("jobs", "list", "--limit", "0"), {"RELAY_RECONCILE_EVRY": "5"}, workdir)
    warning = "warning: RELAY_RECONCILE_EVRY is not a setting; did you mean RELAY_RECONCILE_EVERY?"
    assert done.stderr.count(warning) == 1


@pytest.fixture
def small_image(workdir: Path) -> Path:
    path = workdir / "tiny.png"
    path.write_bytes(render_image(width=200, height=150))
    return path


def test_a_small_local_image_is_warned_about(small_image: Path, workdir: Path) -> None:
    """A local image under 300 px a side is named with its size before it is uploaded."""
    done = run(("submit", "--prompt", "x", "--image", str(small_image)), {}, workdir)
    assert f"warning: {small_image} is 200x150 px; EvoLink refuses images under 300 px a side" in done.stderr
    assert "Traceback" not in done.stderr
