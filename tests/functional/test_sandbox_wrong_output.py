"""SANDBOX_WRONG_OUTPUT_RATE: the sandbox completes a task with a real video that misses its request, one way at a
time, and the relay's checks tell which."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

from handlers.media.checks import check_facts, failed
from handlers.media.facts import read_facts
from tests.support.servers import running_sandbox, wait_until

KEY = {"Authorization": "Bearer sk-evo-test-key"}
REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4,
           "quality": "480p", "aspect_ratio": "16:9", "generate_audio": True}


def finished_video(client: httpx.Client, request: dict[str, object]) -> bytes:
    task = client.post("/v1/videos/generations", json=request, headers=KEY).json()
    done = wait_until(lambda: (t := client.get(f"/v1/tasks/{task['id']}", headers=KEY).json())["status"]
                      == "completed" and t, 20, "the task")
    return client.get(done["results"][0]).content


@pytest.mark.parametrize(("kind", "missed"), [("duration", "duration"), ("resolution", "resolution"),
                                              ("audio", "audio")])
def test_a_wrong_output_misses_its_request_in_the_way_asked(tmp_path: Path, kind: str, missed: str) -> None:
    with running_sandbox(tmp_path, speed=400.0, wrong_output_rate=1.0, wrong_output=kind) as sandbox, \
            httpx.Client(base_url=sandbox.url) as client:
        facts = read_facts(io.BytesIO(finished_video(client, REQUEST)))
    assert failed(check_facts(facts, REQUEST)) == [missed]


def test_wrong_outputs_take_turns_and_a_request_without_audio_misses_its_duration(tmp_path: Path) -> None:
    silent = {**REQUEST, "generate_audio": False}
    with running_sandbox(tmp_path, speed=400.0, wrong_output_rate=1.0, wrong_output="audio,resolution") as sandbox, \
            httpx.Client(base_url=sandbox.url) as client:
        first, second = (read_facts(io.BytesIO(finished_video(client, silent))) for _ in range(2))
    assert first.duration == 6.0 and failed(check_facts(first, silent)) == ["duration"]
    assert failed(check_facts(second, silent)) == ["resolution"]


def test_without_the_switch_the_video_matches_its_request(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, speed=400.0) as sandbox, httpx.Client(base_url=sandbox.url) as client:
        facts = read_facts(io.BytesIO(finished_video(client, REQUEST)))
    assert failed(check_facts(facts, REQUEST)) == []
