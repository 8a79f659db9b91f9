"""The sandbox speaks EvoLink's API over real HTTP: routes, auth, errors, lifecycle, callbacks, media."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import av
import httpx
import jsonschema
import pytest

from handlers.domain.contract import frame_size
from handlers.sandbox.callbacks import CallbackSender
from handlers.sandbox.settings import SandboxSettings
from tests.conftest import load_fixture
from tests.support.servers import running_receiver, running_sandbox, wait_until

KEY = {"Authorization": "Bearer sk-evo-test-key"}
REQUEST = {"model": "seedance-2.0-reference-to-video", "prompt": "Use image 1 as the first frame",
           "image_urls": ["https://example.com/a.png"], "duration": 4, "quality": "480p",
           "aspect_ratio": "9:16"}
FAST = 400.0  # a 4 s 480p task (86 s nominal) finishes in about 0.2 s


def task_schema() -> dict[str, Any]:
    spec = load_fixture("evolink/task-management__get-task-detail.json")
    return {**spec["components"]["schemas"]["TaskDetailResponse"], "components": spec["components"]}


def create_schema() -> dict[str, Any]:
    spec = load_fixture("evolink/video-series__seedance2.0__seedance-2.0-reference-to-video.json")
    return {"$ref": "#/components/schemas/VideoGenerationResponse", "components": spec["components"]}


def poll_final(client: httpx.Client, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/v1/tasks/{task_id}", headers=KEY).json()
        return body if body["status"] in ("completed", "failed", "cancelled") else None

    result: dict[str, Any] = wait_until(final, timeout, f"task {task_id} to finish")
    return result


@pytest.fixture
def sandbox(tmp_path: Path) -> Any:
    with running_sandbox(tmp_path, speed=FAST) as running, httpx.Client(base_url=running.url) as client:
        yield client


def test_create_answers_like_evolink_and_matches_the_published_schema(sandbox: httpx.Client) -> None:
    response = sandbox.post("/v1/videos/generations", json=REQUEST, headers=KEY)
    body = response.json()
    assert response.status_code == 200
    jsonschema.validate(body, create_schema())
    assert body["id"].startswith("task-unified-") and len(body["id"].rsplit("-", 1)[1]) == 8
    assert body["status"] == "pending" and body["task_info"]["video_duration"] == 4


def test_task_detail_validates_against_the_get_task_schema_at_every_stage(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, speed=20.0) as sandbox, httpx.Client(base_url=sandbox.url) as client:
        task_id = client.post("/v1/videos/generations", json=REQUEST, headers=KEY).json()["id"]
        seen: list[dict[str, Any]] = []

        def done() -> bool:
            seen.append(client.get(f"/v1/tasks/{task_id}", headers=KEY).json())
            return seen[-1]["status"] == "completed"

        wait_until(done, 20.0, "completion", interval=0.1)
    for body in seen:
        jsonschema.validate(body, task_schema())
    statuses = [b["status"] for b in seen]
    progress = [b["progress"] for b in seen]
    assert statuses[0] == "pending" and "processing" in statuses and statuses[-1] == "completed"
    assert progress == sorted(progress) and progress[-1] == 100


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}])
def test_a_bearer_key_is_required(sandbox: httpx.Client, headers: dict[str, str]) -> None:
    response = sandbox.post("/v1/videos/generations", json=REQUEST, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_configured_key_refuses_other_keys(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, api_key="sk-evo-right") as sandbox:
        wrong = httpx.post(f"{sandbox.url}/v1/videos/generations", json=REQUEST, headers=KEY)
        right = httpx.post(f"{sandbox.url}/v1/videos/generations", json=REQUEST,
                           headers={"Authorization": "Bearer sk-evo-right"})
    assert (wrong.status_code, right.status_code) == (401, 200)


def test_invalid_requests_get_evolinks_400_body_naming_the_field(sandbox: httpx.Client) -> None:
    response = sandbox.post("/v1/videos/generations", json={**REQUEST, "duration": 16}, headers=KEY)
    error = response.json()["error"]
    assert response.status_code == 400
    assert (error["code"], error["type"], error["param"]) == ("invalid_request", "invalid_request_error", "duration")


def test_callback_urls_must_be_https_or_loopback_http(sandbox: httpx.Client) -> None:
    body = {**REQUEST, "callback_url": "http://example.com/hook"}
    response = sandbox.post("/v1/videos/generations", json=body, headers=KEY)
    assert response.status_code == 400 and response.json()["error"]["param"] == "callback_url"


@pytest.mark.parametrize(("task_id", "status", "code"), [
    ("job-123", 400, "invalid_task_id"),
    ("task-unified-1700000000-zzzzzzzz", 404, "task_not_found"),
])
def test_unknown_or_malformed_task_ids(sandbox: httpx.Client, task_id: str, status: int, code: str) -> None:
    response = sandbox.get(f"/v1/tasks/{task_id}", headers=KEY)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/v1/nothing-here", 404, "not_found"),
    ("POST", "/v1/tasks/task-unified-1700000000-zzzzzzzz", 405, "method_not_allowed"),
    ("GET", "/v1/videos/generations", 405, "method_not_allowed"),
])
def test_unknown_routes_and_wrong_methods_answer_evolinks_json_error(sandbox: httpx.Client, method: str, path: str,
                                                                     status: int, code: str) -> None:
    """Clients parse every error body as JSON: no text/plain ``Not Found``."""
    response = sandbox.request(method, path, headers=KEY)
    error = response.json()["error"]
    assert response.status_code == status and response.headers["content-type"] == "application/json"
    assert (error["code"], error["type"]) == (code, "invalid_request_error") and error["message"]
    if status == 405:
        assert response.headers["allow"]


def test_another_keys_task_is_forbidden(sandbox: httpx.Client) -> None:
    task_id = sandbox.post("/v1/videos/generations", json=REQUEST, headers=KEY).json()["id"]
    response = sandbox.get(f"/v1/tasks/{task_id}", headers={"Authorization": "Bearer someone-else"})
    assert response.status_code == 403


@pytest.mark.parametrize(("quality", "aspect", "audio"), [("480p", "9:16", True), ("480p", "21:9", False)])
def test_results_are_real_playable_mp4s(tmp_path: Path, quality: str, aspect: str, audio: bool) -> None:
    request = {**REQUEST, "quality": quality, "aspect_ratio": aspect, "generate_audio": audio}
    with running_sandbox(tmp_path, speed=FAST) as sandbox, httpx.Client(base_url=sandbox.url) as client:
        task = poll_final(client, client.post("/v1/videos/generations", json=request, headers=KEY).json()["id"])
        video = httpx.get(task["results"][0])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", *frame_size(quality, aspect))
        assert abs(container.duration / 1e6 - 4) < 0.1
        assert bool(container.streams.audio) is audio


def test_result_urls_expire(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, speed=FAST, url_ttl=4.0) as sandbox, httpx.Client(base_url=sandbox.url) as client:
        task = poll_final(client, client.post("/v1/videos/generations", json=REQUEST, headers=KEY).json()["id"])
        url = task["results"][0]
        assert httpx.get(url).status_code == 200  # signed with 4 s to live when the task finished
        wait_until(lambda: httpx.get(url).status_code == 403, 10.0, "the URL to expire", interval=0.2)
        assert httpx.get(url.replace("sig=", "sig=0")).status_code == 403


@pytest.mark.parametrize(("code", "status"), [("content_policy_violation", "failed"), ("cancelled", "cancelled")])
def test_fail_rate_fails_tasks_with_the_chosen_code(tmp_path: Path, code: str, status: str) -> None:
    with running_sandbox(tmp_path, speed=FAST, fail_rate=1.0, fail_code=code) as sandbox, \
            httpx.Client(base_url=sandbox.url) as client:
        task = poll_final(client, client.post("/v1/videos/generations", json=REQUEST, headers=KEY).json()["id"])
    assert task["status"] == status and "results" not in task
    if status == "failed":
        assert task["error"] == {"code": code, "message": task["error"]["message"], "type": "task_error"}
        jsonschema.validate(task, task_schema())


def test_create_error_rate_answers_429_500_or_503(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, create_error_rate=1.0, seed=7) as sandbox:
        answers = [httpx.post(f"{sandbox.url}/v1/videos/generations", json=REQUEST, headers=KEY)
                   for _ in range(12)]
    assert {a.status_code for a in answers} <= {429, 500, 503} and len({a.status_code for a in answers}) >= 2
    assert all("error" in a.json() for a in answers)
    assert all(a.headers.get("retry-after") == "1" for a in answers if a.status_code == 429)


def test_completed_tasks_call_back_with_the_task_json(tmp_path: Path) -> None:
    with running_receiver() as receiver, running_sandbox(tmp_path, speed=FAST) as sandbox, \
            httpx.Client(base_url=sandbox.url) as client:
        body = {**REQUEST, "callback_url": f"{receiver.url}/hook?token=abc"}
        task_id = client.post("/v1/videos/generations", json=body, headers=KEY).json()["id"]
        [callback] = receiver.wait_for(1)
        detail = client.get(f"/v1/tasks/{task_id}", headers=KEY).json()
    assert (callback.path, callback.query) == ("/hook", "token=abc")
    assert json.loads(callback.body) == detail


def test_failed_callbacks_are_retried_three_times_after_1_2_and_4_seconds(tmp_path: Path) -> None:
    sleeps: list[float] = []
    settings = SandboxSettings(data_dir=tmp_path)
    import random
    sender = CallbackSender(settings, rng=random.Random(1), sleep=sleeps.append)
    with running_receiver(plan=[500, 502, 503, 500]) as receiver:
        sender.deliver(f"{receiver.url}/hook", {"id": "task-unified-1-abcdefgh", "status": "completed"})
        receiver.wait_for(4)
        sender.close()
    assert sleeps == [1.0, 2.0, 4.0] and len(receiver.received) == 4


def test_duplicates_and_drops(tmp_path: Path) -> None:
    with running_receiver() as receiver:
        with running_sandbox(tmp_path / "dup", speed=FAST, callback_duplicate=3) as sandbox:
            body = {**REQUEST, "callback_url": f"{receiver.url}/dup"}
            httpx.post(f"{sandbox.url}/v1/videos/generations", json=body, headers=KEY)
            assert len(receiver.wait_for(4)) == 4
        with running_sandbox(tmp_path / "drop", speed=FAST, callback_drop=1.0) as sandbox, \
                httpx.Client(base_url=sandbox.url) as client:
            body = {**REQUEST, "callback_url": f"{receiver.url}/drop"}
            poll_final(client, client.post("/v1/videos/generations", json=body, headers=KEY).json()["id"])
            assert sandbox.engine.sender.dropped == 1
    assert [r.path for r in receiver.received].count("/drop") == 0


def test_tasks_survive_a_sandbox_restart(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, speed=FAST) as sandbox:
        task = httpx.post(f"{sandbox.url}/v1/videos/generations", json=REQUEST, headers=KEY).json()
    with running_sandbox(tmp_path, speed=FAST) as sandbox, httpx.Client(base_url=sandbox.url) as client:
        assert poll_final(client, task["id"])["status"] == "completed"


def test_download_delay_holds_result_downloads(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, speed=FAST, download_delay=1.0) as sandbox, \
            httpx.Client(base_url=sandbox.url) as client:
        task = poll_final(client, client.post("/v1/videos/generations", json=REQUEST, headers=KEY).json()["id"])
        response = httpx.get(task["results"][0])
    assert response.status_code == 200 and response.elapsed.total_seconds() >= 1.0
