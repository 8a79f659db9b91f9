"""End to end over real sockets: API → sandbox → callback → worker → stored MP4 → event."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from urllib.parse import urlsplit

import av
import jsonschema
import pytest

from handlers.domain.events import event_id
from tests.conftest import load_fixture
from tests.support.pipeline import REQUEST, running_pipeline
from tests.support.servers import wait_until

pytestmark = pytest.mark.e2e


def test_a_job_goes_from_api_to_stored_video_and_one_cloudevent(tmp_path: Path) -> None:
    with running_pipeline(tmp_path) as pipeline:
        job = pipeline.submit({**REQUEST, "metadata": {"order": "A-17"}}, **{"Idempotency-Key": "order-A-17"})
        final = pipeline.wait_final(job["id"])
        events = pipeline.events()
        delivered = pipeline.subscriber_messages()
    [output] = final["outputs"]
    path = Path(urlsplit(output["uri"]).path)
    data = path.read_bytes()
    assert final["status"] == "published" and final["outcome"] == "completed" and final["progress"] == 100
    assert output["size"] == len(data) and output["sha256"] == hashlib.sha256(data).hexdigest()
    with av.open(io.BytesIO(data)) as container:
        assert abs(container.duration / 1e6 - 4) < 0.1 and container.streams.audio
    [event] = events
    jsonschema.validate(event, load_fixture("cloudevents/cloudevents-1.0.schema.json"))
    assert event["id"] == event_id(job["id"], "completed") and final["event_ids"] == [event["id"]]
    assert event["type"] == "io.seedance-relay.job.completed" and event["subject"] == job["id"]
    stored = {k: v for k, v in output.items() if k not in ("url", "frame_urls")}  # the API adds its routes
    assert output["frame_urls"] == {role: f"{output['url']}/{role}" for role in output["frames"]}
    assert event["data"]["metadata"] == {"order": "A-17"} and event["data"]["outputs"] == [stored]
    assert delivered == [event]
    assert (path.parent / "manifest.json").exists()


def test_repeating_a_submission_returns_the_same_job_and_never_submits_twice(tmp_path: Path) -> None:
    with running_pipeline(tmp_path) as pipeline:
        first = pipeline.submit(**{"Idempotency-Key": "same-key"})
        again = pipeline.submit(**{"Idempotency-Key": "same-key"})
        by_hash_1, by_hash_2 = pipeline.submit(), pipeline.submit()
        reused = pipeline.api.post("/v1/jobs", json={**REQUEST, "duration": 5}, headers={"Idempotency-Key": "same-key"})
        pipeline.wait_final(first["id"])
        pipeline.wait_final(by_hash_1["id"])
        tasks = len(list((tmp_path / "sandbox" / "tasks").glob("*.json")))
    assert first["id"] == again["id"] and first["task_id"] == again["task_id"]
    assert by_hash_1["id"] == by_hash_2["id"] and by_hash_1["id"] != first["id"]
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"
    assert tasks == 2


def test_duplicate_callbacks_give_one_copy_and_one_event(tmp_path: Path) -> None:
    with running_pipeline(tmp_path, callback_duplicate=4) as pipeline:
        jobs = [pipeline.submit({**REQUEST, "prompt": f"duplicate run {i}"}) for i in range(5)]
        finals = [pipeline.wait_final(j["id"]) for j in jobs]
        wait_until(lambda: pipeline.relay.runtime.relay.ingest_queue.depth()["visible"] == 0, 10, "drain")  # type: ignore[union-attr]
        events, delivered, files = pipeline.events(), pipeline.subscriber_messages(), pipeline.blob_files()
    assert {f["status"] for f in finals} == {"published"}
    assert len(events) == 5 and len({e["id"] for e in events}) == 5
    assert len(delivered) == 5 and len(files) == 5


def test_dropped_callbacks_are_caught_by_the_reconciler(tmp_path: Path) -> None:
    with running_pipeline(tmp_path, callback_drop=1.0) as pipeline:
        job = pipeline.submit()
        final = pipeline.wait_final(job["id"], timeout=60)
        dropped = pipeline.sandbox.engine.sender.dropped
    assert final["status"] == "published" and dropped == 1


def test_delayed_callbacks_still_complete_the_job(tmp_path: Path) -> None:
    with running_pipeline(tmp_path, callback_delay=1.5, relay_env={"RELAY_RECONCILE_EVERY": "600"}) as pipeline:
        final = pipeline.wait_final(pipeline.submit()["id"])
    assert final["status"] == "published"


@pytest.mark.parametrize(("code", "status", "event_type"), [
    ("content_policy_violation", "failed", "io.seedance-relay.job.failed"),
    ("request_cancelled", "cancelled", "io.seedance-relay.job.cancelled"),
    ("cancelled", "cancelled", "io.seedance-relay.job.cancelled"),
])
def test_provider_failures_become_terminal_events(tmp_path: Path, code: str, status: str, event_type: str) -> None:
    with running_pipeline(tmp_path, fail_rate=1.0, fail_code=code) as pipeline:
        final = pipeline.wait_final(pipeline.submit()["id"])
        [event] = pipeline.events()
    assert final["status"] == status and event["type"] == event_type
    if code != "cancelled":
        assert final["error"]["code"] == code and event["data"]["error"]["code"] == code


def test_a_restart_mid_flight_loses_nothing(tmp_path: Path) -> None:
    with running_pipeline(tmp_path, speed=40.0) as pipeline:
        job = pipeline.submit()
        pipeline.stop_relay()  # the callback arrives while the relay is down and is lost
        wait_until(lambda: pipeline.sandbox.engine.get(job["task_id"], owner="sk-evo-sandbox-local")["status"]
                   == "completed", 30, "the task to complete while the relay is down")
        pipeline.start_relay()
        final = pipeline.wait_final(job["id"], timeout=60)
        events = pipeline.events()
    assert final["status"] == "published" and len(events) == 1


def test_a_job_that_never_finishes_expires_with_an_expired_event(tmp_path: Path) -> None:
    with running_pipeline(tmp_path, speed=0.001, relay_env={"RELAY_EXPIRE_AFTER": "2"}) as pipeline:
        final = pipeline.wait_final(pipeline.submit()["id"], timeout=30)
        [event] = pipeline.events()
    assert final["status"] == "expired" and event["type"] == "io.seedance-relay.job.expired"


@pytest.mark.parametrize("processes", ["2", "0"], ids=["child-processes", "in-threads"])
def test_a_served_relay_reads_its_videos_in_child_processes_unless_told_not_to(tmp_path: Path,
                                                                               processes: str) -> None:
    """Read by a child of the relay or by its ingest thread, the output has the same facts and pictures; a
    relay that stops leaves no child behind."""
    with running_pipeline(tmp_path, relay_env={"RELAY_MEDIA_PROCESSES": processes}) as pipeline:
        final = pipeline.wait_final(pipeline.submit()["id"])
        assert pipeline.relay is not None and pipeline.relay.runtime.relay is not None
        readers = pipeline.relay.runtime.relay.media_processes
        pids = readers.pids if readers is not None else []
    [output] = final["outputs"]
    assert final["status"] == "published"
    assert (output["media"]["duration"], output["media"]["width"], output["media"]["has_audio"]) == (4.0, 864, True)
    assert all(check["ok"] for check in output["checks"])
    assert sorted(output["frames"]) == ["last-frame", "last-frame-thumbnail", "poster", "poster-thumbnail"]
    if processes == "0":
        assert readers is None
    else:
        assert readers is not None and readers.count == 2 and len(pids) == 1  # started on first use
        assert not Path(f"/proc/{pids[0]}").exists() or "Z" in Path(f"/proc/{pids[0]}/stat").read_text().split()[2]
