"""Storyboards on local adapters with a fake provider and a real media server: every shot created at once, a
continuation shot waiting for the shot it names, the shots joined into one decoded MP4, a failed shot named by
``storyboard.failed``, and a rerun that makes new jobs only for the shots that change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from handlers.app.relay import Relay
from handlers.base.errors import InvalidRequest
from handlers.domain.jobs import Job, JobStatus
from handlers.domain.storyboards import parse_storyboard
from handlers.media.facts import read_facts
from handlers.tooling.event_schemas import event_schema
from handlers.usecases import accept_callback
from handlers.usecases.storyboards import create_storyboard, estimate_storyboard, rerun_shot, show_storyboard
from tests.support.fakes import Clock, FakeProvider, drain, local_relay
from tests.support.media_server import MediaServer

SHOT = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse at dawn", "duration": 4, "quality": "480p"}
NEXT = {"model": "seedance-2.0-reference-to-video", "prompt": "the same lighthouse at dusk, like @video1",
        "duration": 5, "quality": "480p", "video_urls": ["shot://intro/output-0"]}
BOARD: dict[str, Any] = {"shots": [{"id": "intro", "request": SHOT}, {"id": "dusk", "request": NEXT}],
                         "assemble": True, "metadata": {"film": "lighthouse"}}


@pytest.fixture
def relay(tmp_path: Path, provider: FakeProvider, media: MediaServer) -> Iterator[Relay]:
    relay = local_relay(tmp_path, provider, Clock(), EVOLINK_BASE_URL=media.url(""), RELAY_EXPIRE_AFTER="3600")
    yield relay
    relay.close()


def finish(relay: Relay, provider: FakeProvider, job_id: str, status: str = "completed") -> Job:
    job = relay.jobs.get(job_id)
    provider.finish(job.task_id or "", status, {"code": "content_policy_violation"} if status == "failed" else None)
    accept_callback(relay, job.id, relay.signer.sign(job.id), f'{{"id": "{job.task_id}"}}'.encode())
    drain(relay)
    return relay.jobs.get(job_id)


def shot_jobs(view: dict[str, Any]) -> dict[str, str]:
    return {shot["id"]: shot["job_id"] for shot in view["shots"]}


def storyboard_events(relay: Relay) -> list[dict[str, Any]]:
    """The storyboard events on the bus, each checked against its type's JSON Schema."""
    events = [e for _, e in relay.bus.events(limit=1000)  # type: ignore[attr-defined]
              if e["type"].startswith("io.seedance-relay.storyboard.")]
    for event in events:
        schema = event_schema(event["type"])
        Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(event)
    return events


def test_every_shot_is_created_at_once_and_a_continuation_waits_for_the_shot_it_names(
        relay: Relay, provider: FakeProvider) -> None:
    view = create_storyboard(relay, BOARD)
    intro, dusk = (relay.jobs.get(job_id) for job_id in shot_jobs(view).values())
    assert intro.status is JobStatus.SUBMITTED and dusk.status is JobStatus.WAITING
    assert dusk.depends_on == (intro.id,) and (dusk.storyboard, dusk.shot) == (view["id"], "dusk")
    assert view["status"] == "running" and view["revision"] == 1


def test_the_published_shots_are_joined_in_order_into_one_mp4_lasting_their_sum(
        relay: Relay, provider: FakeProvider) -> None:
    view = create_storyboard(relay, BOARD)
    jobs = shot_jobs(view)
    finish(relay, provider, jobs["intro"])
    finish(relay, provider, jobs["dusk"])
    done = show_storyboard(relay, view["id"], tenant="default")
    assert done["status"] == "completed"
    [output] = done["outputs"]
    facts = read_facts(relay.blobs.local_path(output["key"]) or "")
    parts = [relay.jobs.get(j).outputs[0] for j in jobs.values()]
    part_facts = [read_facts(relay.blobs.local_path(p.key) or "") for p in parts]
    assert abs(facts.duration - sum(p.duration for p in part_facts)) <= sum(p.frame_seconds for p in part_facts)
    assert output["media"]["assembly"]["method"] == "remux"
    assert output["checks"] == [{"name": "duration", "ok": True, "expected": output["checks"][0]["expected"],
                                 "actual": output["checks"][0]["actual"]}]
    assert set(output["frames"]) >= {"poster", "last-frame"}
    [event] = storyboard_events(relay)
    assert event["type"] == "io.seedance-relay.storyboard.completed" and event["subject"] == view["id"]
    assert event["data"]["outputs"][0]["key"] == output["key"]
    assert [s["id"] for s in event["data"]["shots"]] == ["intro", "dusk"]


def test_a_joined_storyboard_whose_event_is_not_out_yet_is_completing_not_failed(
        relay: Relay, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers.usecases import assembly
    from handlers.usecases.outcomes import publish_outcome

    monkeypatch.setattr(assembly, "publish_outcome", lambda relay, job: job)  # stored; the event not out yet
    view = create_storyboard(relay, BOARD)
    jobs = shot_jobs(view)
    finish(relay, provider, jobs["intro"])
    finish(relay, provider, jobs["dusk"])
    stored = relay.jobs.get(view["job_id"])
    assert stored.status is JobStatus.STORED and stored.outcome is not None
    assert show_storyboard(relay, view["id"], tenant="default")["status"] == "completing"
    publish_outcome(relay, stored)
    assert show_storyboard(relay, view["id"], tenant="default")["status"] == "completed"


def test_a_failed_shot_fails_the_storyboard_naming_that_shot(relay: Relay, provider: FakeProvider) -> None:
    view = create_storyboard(relay, BOARD)
    finish(relay, provider, shot_jobs(view)["intro"], "failed")
    failed = show_storyboard(relay, view["id"], tenant="default")
    assert failed["status"] == "failed"
    assert [s["status"] for s in failed["shots"]] == ["failed", "failed"]
    [event] = storyboard_events(relay)
    assert event["type"] == "io.seedance-relay.storyboard.failed"
    assert event["data"]["error"]["code"] == "dependency_failed" and event["data"]["error"]["shot"] == "intro"


def test_a_rerun_makes_new_jobs_only_for_the_shot_and_those_naming_it(relay: Relay, provider: FakeProvider) -> None:
    board = {**BOARD, "shots": [{"id": "wide", "request": {**SHOT, "prompt": "a wide shot"}}, *BOARD["shots"]]}
    view = create_storyboard(relay, board)
    first = shot_jobs(view)
    for shot in ("wide", "intro", "dusk"):
        finish(relay, provider, first[shot])
    creates = len(provider.creates)
    again = rerun_shot(relay, view["id"], "intro", tenant="default")
    second = shot_jobs(again)
    assert again["revision"] == 2 and again["rerun"] == "intro"
    assert second["wide"] == first["wide"]  # unchanged: not paid again
    assert second["intro"] != first["intro"] and second["dusk"] != first["dusk"]
    assert len(provider.creates) == creates + 1  # the new intro now; the new dusk waits for it
    finish(relay, provider, second["intro"])
    finish(relay, provider, second["dusk"])
    assert show_storyboard(relay, view["id"], tenant="default")["status"] == "completed"
    assert len(storyboard_events(relay)) == 2


def test_a_shot_may_only_name_shots_listed_before_it(relay: Relay) -> None:
    board = {"shots": [{"id": "dusk", "request": NEXT}, {"id": "intro", "request": SHOT}]}
    with pytest.raises(InvalidRequest, match="names shot 'intro', which is not listed before this shot") as exc:
        create_storyboard(relay, board)
    assert [(v.field, v.code) for v in exc.value.violations] == [("shots[0].request.video_urls[0]", "unknown_shot")]
    assert relay.jobs.page()[0] == []  # nothing was created


def test_an_invalid_shot_request_is_named_by_its_path_and_nothing_is_created(relay: Relay) -> None:
    board = {"shots": [{"id": "intro", "request": SHOT}, {"id": "dusk", "request": {**NEXT, "duration": 99}}]}
    with pytest.raises(InvalidRequest) as exc:
        create_storyboard(relay, board)
    assert [(v.field, v.code) for v in exc.value.violations] == [("shots[1].request.duration", "out_of_range")]
    assert relay.jobs.page()[0] == []


def test_another_tenant_cannot_see_a_storyboard(relay: Relay) -> None:
    view = create_storyboard(relay, BOARD, tenant="studio")
    with pytest.raises(Exception, match="no storyboard"):
        show_storyboard(relay, view["id"], tenant="other")


def test_the_storyboard_costs_the_sum_of_its_shots(relay: Relay) -> None:
    cost = estimate_storyboard(relay, parse_storyboard(BOARD))
    view = create_storyboard(relay, BOARD)
    assert cost.credits == pytest.approx(sum(cost.shots.values()))
    assert view["credits"]["estimated"] == pytest.approx(cost.credits)


def test_submitting_the_same_storyboard_again_finds_it(relay: Relay, provider: FakeProvider) -> None:
    first = create_storyboard(relay, BOARD, idempotency_key="film-1")
    again = create_storyboard(relay, BOARD, idempotency_key="film-1")
    assert again["id"] == first["id"] and shot_jobs(again) == shot_jobs(first)
    assert len(provider.creates) == 1
