"""The task model reads EvoLink's task object tolerantly."""

from __future__ import annotations

import pytest

from handlers.provider.evolink.task import Task, is_task_id, new_task_id
from tests.conftest import load_fixture


def test_reads_the_seed_create_response() -> None:
    task = Task.from_json({
        "id": "task-unified-1774857405-abc123", "object": "video.generation.task",
        "created": 1774857405, "model": "seedance-2.0-reference-to-video", "status": "pending",
        "progress": 0, "type": "video",
        "task_info": {"can_cancel": True, "estimated_time": 180, "video_duration": 10},
        "usage": {"billing_rule": "per_second", "credits_reserved": 60, "user_group": "default"},
    })
    assert (task.id, task.status, task.estimated_time, task.credits_reserved) == (
        "task-unified-1774857405-abc123", "pending", 180, 60.0)
    assert task.outcome is None


def test_unknown_fields_are_kept_but_ignored() -> None:
    task = Task.from_json({"id": "task-unified-1-a", "status": "completed", "results": ["https://x/y.mp4"],
                           "result_data": {"whatever": 1}, "usage": {"credits_used": 3}})
    assert task.outcome == "completed"
    assert task.raw["result_data"] == {"whatever": 1}


@pytest.mark.parametrize(("body", "outcome"), [
    ({"status": "cancelled"}, "cancelled"),
    ({"status": "failed", "error": {"code": "request_cancelled"}}, "cancelled"),
    ({"status": "failed", "error": {"code": "service_error"}}, "failed"),
    ({"status": "failed"}, "failed"),
    ({"status": "processing", "progress": 40}, None),
])
def test_outcome_maps_statuses_and_cancellation(body: dict[str, object], outcome: str | None) -> None:
    assert Task.from_json({"id": "task-unified-1-a", **body}).outcome == outcome


def test_integer_error_code_becomes_a_string() -> None:
    task = Task.from_json({"id": "task-unified-1-a", "status": "failed", "error": {"code": 500}})
    assert task.error is not None
    assert task.error.code == "500"


def test_garbage_fields_do_not_break_parsing() -> None:
    task = Task.from_json({"id": "task-unified-1-a", "status": "processing", "progress": "x",
                           "results": "nope", "task_info": [], "usage": None, "error": "bad"})
    assert (task.progress, task.results, task.error, task.estimated_time) == (0, (), None, None)


def test_new_task_ids_have_evolinks_shape() -> None:
    task_id = new_task_id(1774857405.7)
    assert task_id.startswith("task-unified-1774857405-")
    assert len(task_id.rsplit("-", 1)[1]) == 8
    assert is_task_id(task_id)
    assert not is_task_id("job-1")


def test_reads_the_documented_task_detail_example() -> None:
    spec = load_fixture("evolink/task-management__get-task-detail.json")
    props = spec["components"]["schemas"]["TaskDetailResponse"]["properties"]
    example = {name: prop["example"] for name, prop in props.items() if "example" in prop}
    task = Task.from_json(example)
    assert task.id == "task-unified-1756817821-4x3rx6ny"
    assert task.outcome == "completed"
