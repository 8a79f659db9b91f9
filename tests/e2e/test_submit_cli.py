"""``submit``, ``jobs`` and ``dlq`` against a running relay; local files go up through /v1/uploads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.cli.submit import generation_label
from handlers.sandbox.media import render_audio, render_image
from tests.support.cli import pipeline_cli as cli
from tests.support.pipeline import Pipeline, running_pipeline

pytestmark = pytest.mark.e2e


@pytest.fixture
def pipeline(tmp_path: Path) -> Any:
    with running_pipeline(tmp_path) as pipeline:
        yield pipeline


def test_submit_with_local_files_waits_and_prints_json_lines(pipeline: Pipeline, tmp_path: Path) -> None:
    image, audio = tmp_path / "style.png", tmp_path / "music.wav"
    image.write_bytes(render_image(width=640, height=480))
    audio.write_bytes(render_audio(seconds=3))
    result = cli(pipeline, "submit", "--model", "seedance-2.0-reference-to-video", "--prompt",
                 "Use image 1 as the first frame and audio 1 as music", "--duration", "4", "--quality", "480p",
                 "--image", str(image), "--audio", str(audio), "--metadata", '{"from": "cli"}', "--wait", "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    final = lines[-1]
    assert result.exit_code == 0, result.output
    assert final["status"] == "published" and final["metadata"] == {"from": "cli"}
    urls = pipeline.relay.runtime.relay.jobs.get(final["id"]).request  # type: ignore[union-attr]
    fetched = httpx.get(urls["image_urls"][0])
    assert fetched.status_code == 200 and fetched.content == image.read_bytes()
    assert "/v1/uploads/" in urls["audio_urls"][0]


def test_submit_reports_every_violation_and_exits_1(pipeline: Pipeline) -> None:
    result = cli(pipeline, "submit", "--model", "seedance-2.0-fast-reference-to-video", "--prompt", "x",
                 "--duration", "20", "--quality", "1080p")
    assert result.exit_code == 1
    assert "duration" in result.output and "quality" in result.output and "Traceback" not in result.output


def test_a_path_that_is_not_a_file_is_refused_before_anything_is_sent(pipeline: Pipeline) -> None:
    result = cli(pipeline, "submit", "--model", "seedance-2.0-reference-to-video", "--prompt", "x",
                 "--image", "/no/such/file.png")
    assert result.exit_code == 2 and "neither a URL nor a readable file" in result.output


def test_jobs_list_and_show(pipeline: Pipeline) -> None:
    job = pipeline.submit()
    pipeline.wait_final(job["id"])
    listed = cli(pipeline, "jobs", "list", "--json")
    shown = cli(pipeline, "jobs", "show", job["id"])
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [job["id"]]
    assert json.loads(shown.stdout)["status"] == "published"


def test_dlq_list_and_redrive_on_the_local_backend(pipeline: Pipeline) -> None:
    assert pipeline.relay is not None and pipeline.relay.runtime.relay is not None
    queue = pipeline.relay.runtime.relay.bus.subscriber("default")
    queue.send({"poison": True})
    for _ in range(9):  # past max receives: the queue moves it to its DLQ
        for message in queue.receive(max_messages=10):
            queue.retry_later(message, 0)
    listed = [json.loads(line) for line in cli(pipeline, "dlq", "list").stdout.splitlines()]
    redrive = cli(pipeline, "dlq", "redrive", "--queue", "subscriber:default")
    redriven = [json.loads(line) for line in redrive.stdout.splitlines()]
    default = next(q for q in listed if q["queue"] == "subscriber:default")
    assert default["dead"] == 1 and default["dead_letters"][0]["body"] == {"poison": True}
    assert redriven == [{"queue": "subscriber:default", "redriven": 1}]
    assert queue.depth()["dead"] == 0


def test_jobs_list_has_a_header_and_times_and_all_pages_through_everything(pipeline: Pipeline) -> None:
    """One page holds --limit jobs under a header; --all follows next_cursor to the last job."""
    ids = [pipeline.submit(None, **{"Idempotency-Key": f"list-{n}"})["id"] for n in range(3)]
    one_page = cli(pipeline, "jobs", "list", "--limit", "2").stdout.splitlines()
    everything = cli(pipeline, "jobs", "list", "--limit", "2", "--all").stdout.splitlines()
    assert one_page[0].split()[:5] == ["ID", "STATUS", "PROGRESS", "CREATED", "(UTC)"]
    assert len(one_page) == 3 and len(everything) == 1 + len(set(ids))
    assert {line.split()[0] for line in everything[1:]} == set(ids)
    created = everything[1].split()[3:5]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", " ".join(created))
    as_json = cli(pipeline, "jobs", "list", "--limit", "1", "--all", "--json").stdout.splitlines()
    assert {json.loads(line)["id"] for line in as_json} == set(ids)


@pytest.mark.parametrize(("status", "progress", "label"), [
    ("accepted", 0, "queued"), ("submitted", 0, "queued"), ("processing", 40, "generating"),
    ("processing", 100, "completed"), ("stored", 100, "completed"), ("published", 100, "completed"),
    ("failed", 30, "failed"),
])
def test_wait_labels_the_generation_bar_as_the_readme_shows(status: str, progress: int, label: str) -> None:
    """--wait's first bar reads queued, generating, then completed (or how the job ended); the second, copying."""
    assert generation_label({"status": status, "progress": progress}) == label
