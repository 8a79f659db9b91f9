"""``validate --estimate`` and ``submit --estimate``: the figure ``POST /v1/estimates`` gives, from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers.domain.pricing import DEFAULT_PRICE_TABLE
from handlers.sandbox.media import render_video
from tests.support.cli import pipeline_cli as cli
from tests.support.media_server import MediaServer
from tests.support.pipeline import Pipeline, running_pipeline

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).with_name("seedance-relay"))
R2V = "seedance-2.0-reference-to-video"
WITH_VIDEO_480P = DEFAULT_PRICE_TABLE.rates["standard"]["480p"].with_video


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    with running_pipeline(tmp_path) as pipeline:
        yield pipeline


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "EVOLINK_", "SANDBOX_"))}
    return subprocess.run([EXE, *args], env={**clean, "RELAY_DATA_DIR": str(cwd / "data")}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def request_file(tmp_path: Path, **body: Any) -> Path:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(body))
    return path


# --- submit --estimate -------------------------------------------------------------------------------


def test_submit_estimate_prints_the_relays_figure_and_submits_nothing(pipeline: Pipeline, tmp_path: Path) -> None:
    """A local 6 s video is uploaded and read by the relay: (6 + 4) s at the with-video rate; no job is made."""
    video = tmp_path / "move.mp4"
    video.write_bytes(render_video(seconds=6, width=640, height=640))
    result = cli(pipeline, "submit", "--model", R2V, "--prompt", "@video1", "--duration", "4", "--quality", "480p",
                 "--video", str(video), "--estimate", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["credits"] == pytest.approx((6 + 4) * WITH_VIDEO_480P, abs=0.05)
    assert answer["assumptions"] == []
    assert pipeline.api.get("/v1/jobs").json()["jobs"] == []


def test_submit_estimate_reads_as_a_breakdown(pipeline: Pipeline) -> None:
    """Without --json: the credits, then one line per item with its seconds and rate."""
    result = cli(pipeline, "submit", "--model", "seedance-2.0-text-to-video", "--prompt", "a kite", "--duration",
                 "10", "--quality", "720p", "--estimate")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == ["60 credits (estimate; nothing was submitted)",
                                              "  output video: 10 s x 6 = 60"]


def test_submit_estimate_of_an_invalid_request_names_each_violation(pipeline: Pipeline) -> None:
    """The relay's 400 is shown field by field, exit 1, as for a submit."""
    result = cli(pipeline, "submit", "--model", "seedance-2.0-mini-text-to-video", "--prompt", "x", "--quality",
                 "1080p", "--estimate")
    assert result.exit_code == 1 and "quality" in result.output and "480p, 720p" in result.output
    assert "Traceback" not in result.output


def test_submit_estimate_refuses_wait(tmp_path: Path) -> None:
    """--estimate submits nothing, so --wait is a usage error (exit 2, one line)."""
    done = run("submit", "--prompt", "x", "--estimate", "--wait", cwd=tmp_path)
    assert done.returncode == 2 and "--estimate submits nothing" in done.stderr and "Traceback" not in done.stderr


# --- validate --estimate -------------------------------------------------------------------------------


def test_validate_estimate_adds_the_estimate_to_the_verdict(tmp_path: Path) -> None:
    """A valid request's verdict carries the same estimate the API answers: 10 s of 720p is 60 credits."""
    path = request_file(tmp_path, model="seedance-2.0-text-to-video", prompt="a kite", duration=10, quality="720p")
    done = run("validate", "--estimate", str(path), cwd=tmp_path)
    verdict = json.loads(done.stdout)
    assert done.returncode == 0 and verdict["ok"] is True
    assert verdict["estimate"]["credits"] == 60.0 and verdict["estimate"]["assumptions"] == []


def test_validate_estimate_without_probe_takes_the_worst_case_and_says_so(tmp_path: Path) -> None:
    """Unprobed reference videos count as 15 s, and the assumptions say they were not read."""
    path = request_file(tmp_path, model=R2V, prompt="@video1", video_urls=["https://example.com/a.mp4"],
                        duration=4, quality="480p")
    estimate = json.loads(run("validate", "--estimate", str(path), cwd=tmp_path).stdout)["estimate"]
    assert estimate["credits"] == round((15 + 4) * WITH_VIDEO_480P, 2)
    assert estimate["assumptions"][-1] == "reference videos were not probed for their length"


def test_validate_estimate_with_probe_reads_the_videos_length(tmp_path: Path) -> None:
    """With --probe the video is read: 9 s of input and 4 s of output bill (9 + 4) s at the with-video rate."""
    with MediaServer() as media:
        url = media.add("/ref.mp4", render_video(seconds=9, width=640, height=640), content_type="video/mp4")
        path = request_file(tmp_path, model=R2V, prompt="@video1", video_urls=[url], duration=4, quality="480p")
        done = run("validate", "--estimate", "--probe", "--allow-http", "--allow-private", str(path), cwd=tmp_path)
    estimate = json.loads(done.stdout)["estimate"]
    assert done.returncode == 0, done.stdout
    assert estimate["credits"] == pytest.approx((9 + 4) * WITH_VIDEO_480P, abs=0.05)
    assert estimate["assumptions"] == []


def test_validate_estimate_of_an_invalid_request_has_no_estimate(tmp_path: Path) -> None:
    """An invalid request gets its errors and exit 1, and no figure."""
    path = request_file(tmp_path, model="seedance-2.0-mini-image-to-video", prompt="x", quality="1080p",
                        image_urls=["https://example.com/a.png"])
    done = run("validate", "--estimate", str(path), cwd=tmp_path)
    assert done.returncode == 1 and "estimate" not in json.loads(done.stdout)


def test_validate_estimate_with_a_table_file_bills_by_it(tmp_path: Path) -> None:
    """--price-table replaces the built-in table."""
    table = DEFAULT_PRICE_TABLE.as_dict()
    table["families"]["standard"]["720p"]["rate"] = 1.0
    (tmp_path / "prices.json").write_text(json.dumps(table))
    path = request_file(tmp_path, model="seedance-2.0-text-to-video", prompt="a kite", duration=10)
    done = run("validate", "--estimate", "--price-table", str(tmp_path / "prices.json"), str(path), cwd=tmp_path)
    assert json.loads(done.stdout)["estimate"]["credits"] == 10.0


def test_a_bad_price_table_is_one_line_naming_the_file_and_entry(tmp_path: Path) -> None:
    """A table without the mini family stops validate with exit 2 and one error line."""
    table = DEFAULT_PRICE_TABLE.as_dict()
    del table["families"]["mini"]
    (tmp_path / "prices.json").write_text(json.dumps(table))
    path = request_file(tmp_path, model="seedance-2.0-text-to-video", prompt="a kite")
    done = run("validate", "--estimate", "--price-table", str(tmp_path / "prices.json"), str(path), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: price table {tmp_path / 'prices.json'}: families has no mini entry; a price table needs "
        "standard, fast, mini"]


# --- the sandbox's billing flags -----------------------------------------------------------------------


@pytest.mark.parametrize(("args", "says"), [
    (("--price-table", "{tmp}/prices.json"), "error: price table {tmp}/prices.json: families.fast.720p.rate must "
                                              "not be negative, got -1"),
    (("--quota", "-1"), "--quota"),
    (("--max-concurrency", "0"), "--max-concurrency"),
])
def test_the_sandbox_refuses_a_bad_price_table_or_limit_in_one_line(tmp_path: Path, args: tuple[str, ...],
                                                                      says: str) -> None:
    """sandbox --price-table, --quota and --max-concurrency: a bad value exits 2 naming it, before serving."""
    table = DEFAULT_PRICE_TABLE.as_dict()
    table["families"]["fast"]["720p"]["rate"] = -1
    (tmp_path / "prices.json").write_text(json.dumps(table))
    done = run("sandbox", "--port", "0", *(a.replace("{tmp}", str(tmp_path)) for a in args), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert says.replace("{tmp}", str(tmp_path)) in done.stderr
