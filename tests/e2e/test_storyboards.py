"""Jobs that use earlier jobs, and storyboards, over real sockets against the sandbox, on both backends.

The sandbox and the relay (in-process, behind its own HTTP server) run once per backend for the module: on
embedded storage (signed relay URLs for referenced files) and on the AWS adapters against moto in server mode
(presigned S3 URLs). The sandbox reads every reference video it is given, as EvoLink does, to bill it: a task
billed for a referenced output's real length proves that the URL the relay handed it could be fetched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.domain.pricing import estimate
from handlers.media.facts import read_facts
from tests.support.cli import relay_cli
from tests.support.servers import wait_until
from tests.support.tenants import TenantStack, tenant_stack

pytestmark = pytest.mark.e2e
T2V = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse at dawn, slow push in", "duration": 4,
       "quality": "480p", "aspect_ratio": "16:9"}
MISSING = "job_" + "0" * 26


@pytest.fixture(scope="module", params=["local", pytest.param("aws", marks=pytest.mark.integration)])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenantStack]:
    backend = str(request.param)
    moto = str(request.getfixturevalue("moto_server")) if backend == "aws" else None
    with tenant_stack(backend, tmp_path_factory.mktemp(f"storyboards-{backend}"), moto=moto) as running:
        yield running


def extend(job_id: str, seconds: int = 5) -> dict[str, Any]:
    return {"model": "seedance-2.0-reference-to-video", "prompt": "continue @video1 into the night",
            "duration": seconds, "quality": "480p", "aspect_ratio": "16:9", "video_urls": [f"job://{job_id}/output-0"]}


def refused(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 400, response.text
    return [(e["field"], e["code"]) for e in response.json()["error"]["errors"]]


def task_of(stack: TenantStack, job: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in stack.sandbox_tasks() if t["id"] == job["task_id"])


def decoded(stack: TenantStack, key: str, size: int) -> Any:
    from handlers.media.ranged import blob_source

    return read_facts(blob_source(stack.relay.blobs, key, size), size=size)


def test_a_job_waits_for_the_output_it_names_and_the_provider_can_fetch_it(stack: TenantStack) -> None:
    tenant = stack.new_tenant("refs")
    first = stack.submit(tenant, T2V)
    second = stack.submit(tenant, extend(first["id"]))
    assert second["status"] in ("waiting", "accepted", "submitted", "processing")
    jobs = stack.wait_final(tenant, [first["id"], second["id"]])
    done = jobs[second["id"]]
    assert done["status"] == "published" and done["depends_on"] == [first["id"]]
    seconds = jobs[first["id"]]["outputs"][0]["media"]["duration"] if jobs[first["id"]]["outputs"][0]["media"] else 4
    billed = task_of(stack, done)["credits"]
    assert billed == pytest.approx(estimate(extend(first["id"]), [seconds], stack.relay.prices).credits, abs=0.5)
    assert billed < estimate(extend(first["id"]), [None], stack.relay.prices).credits  # not the unread worst case


def test_another_tenants_job_is_refused_exactly_like_a_missing_one(stack: TenantStack) -> None:
    owner, other = stack.new_tenant("owner"), stack.new_tenant("other")
    job = stack.submit(owner, T2V)
    theirs = stack.api(other).post("/v1/jobs", json=extend(job["id"]))
    missing = stack.api(other).post("/v1/jobs", json=extend(MISSING))
    assert refused(theirs) == refused(missing) == [("video_urls[0]", "unknown_reference")]
    assert theirs.json()["error"]["errors"][0]["message"].replace(job["id"], MISSING) == \
        missing.json()["error"]["errors"][0]["message"]


def test_referenced_outputs_over_the_15_second_total_are_refused(stack: TenantStack) -> None:
    tenant = stack.new_tenant("limits")
    long, short = stack.submit(tenant, {**T2V, "duration": 12}), stack.submit(tenant, {**T2V, "duration": 5})
    body = {**extend(long["id"]), "video_urls": [f"job://{long['id']}/output-0", f"job://{short['id']}/output-0"]}
    assert refused(stack.api(tenant).post("/v1/jobs", json=body)) == [("video_urls", "total_duration_exceeded")]
    bad = {**extend(long["id"]), "video_urls": [f"job://{long['id']}/poster"]}
    assert refused(stack.api(tenant).post("/v1/jobs", json=bad)) == [("video_urls[0]", "invalid_reference")]


def test_a_waiting_job_fails_with_dependency_failed_when_the_job_it_names_fails(stack: TenantStack) -> None:
    tenant = stack.new_tenant("deps")
    engine = stack.sandbox.engine
    normal = engine.settings
    engine.settings = normal.with_(fail_rate=1.0, fail_code="content_policy_violation")
    try:
        first = stack.submit(tenant, T2V)
    finally:
        engine.settings = normal
    second = stack.submit(tenant, extend(first["id"]))
    jobs = stack.wait_final(tenant, [first["id"], second["id"]])
    failed = jobs[second["id"]]
    assert jobs[first["id"]]["status"] == "failed" and failed["status"] == "failed"
    assert failed["error"]["code"] == "dependency_failed" and failed["error"]["dependency"] == first["id"]
    assert failed["task_id"] is None  # it never reached the provider


def storyboard(stack: TenantStack, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
    response = stack.api(tenant).post("/v1/storyboards", json=body)
    assert response.status_code == 202, response.text
    view: dict[str, Any] = response.json()
    return view


def wait_storyboard(stack: TenantStack, tenant: str, storyboard_id: str, revision: int = 1) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        view: dict[str, Any] = stack.api(tenant).get(f"/v1/storyboards/{storyboard_id}").json()
        return view if view["revision"] == revision and view["status"] in ("completed", "failed") else None

    result: dict[str, Any] = wait_until(ended, 90, f"storyboard {storyboard_id} to end", interval=0.2)
    return result


BOARD = {"assemble": True, "metadata": {"film": "lighthouse"}, "shots": [
    {"id": "intro", "request": T2V},
    {"id": "night", "request": {"model": "seedance-2.0-image-to-video", "prompt": "from this frame, night falls",
                                "duration": 4, "quality": "480p", "aspect_ratio": "16:9",
                                "image_urls": ["shot://intro/last-frame"]}},
    {"id": "storm", "request": {**T2V, "prompt": "a storm over the sea", "duration": 5}},
]}


def test_a_three_shot_storyboard_with_a_continuation_is_joined_into_one_mp4(stack: TenantStack) -> None:
    tenant = stack.new_tenant("board")
    view = storyboard(stack, tenant, BOARD)
    states = {s["id"]: s["status"] for s in view["shots"]}
    assert states["night"] == "waiting" or states["intro"] in ("stored", "published")
    done = wait_storyboard(stack, tenant, view["id"])
    assert done["status"] == "completed", done
    [output] = done["outputs"]
    joined = decoded(stack, output["key"], output["size"])
    shots = [stack.job(tenant, s["job_id"]) for s in done["shots"]]
    parts = [decoded(stack, s["outputs"][0]["key"], s["outputs"][0]["size"]) for s in shots]
    assert abs(joined.duration - sum(p.duration for p in parts)) <= sum(p.frame_seconds for p in parts)
    assert output["media"]["assembly"]["method"] in ("remux", "reencode") and output["checks"][0]["ok"]
    night = stack.relay.jobs.get(shots[1]["id"])
    assert night.request["image_urls"] == [f"job://{shots[0]['id']}/last-frame"]
    assert done["credits"]["estimated"] == pytest.approx(sum(s["credits"]["estimated"] for s in shots))


def test_a_rerun_replaces_the_shot_and_those_naming_it_and_joins_again(stack: TenantStack) -> None:
    tenant = stack.new_tenant("rerun")
    view = storyboard(stack, tenant, BOARD)
    first = wait_storyboard(stack, tenant, view["id"])
    tasks_before = len(stack.sandbox_tasks())
    response = stack.api(tenant).post(f"/v1/storyboards/{view['id']}/shots/intro/rerun")
    assert response.status_code == 202, response.text
    second = wait_storyboard(stack, tenant, view["id"], revision=2)
    before = {s["id"]: s["job_id"] for s in first["shots"]}
    after = {s["id"]: s["job_id"] for s in second["shots"]}
    assert second["status"] == "completed", second
    assert after["storm"] == before["storm"], second
    assert after["intro"] != before["intro"] and after["night"] != before["night"]
    assert second["outputs"][0]["key"] != first["outputs"][0]["key"]
    assert len(stack.sandbox_tasks()) == tasks_before + 2  # intro and night again; storm is not paid again


def test_the_cli_runs_a_storyboard_file_with_one_line_per_shot(stack: TenantStack, tmp_path: Path) -> None:
    import json

    tenant = stack.new_tenant("cli")
    file = tmp_path / "board.json"
    file.write_text(json.dumps({**BOARD, "shots": BOARD["shots"][:2]}))
    key = stack.key_of(tenant)
    estimate_run = relay_cli(stack.url, key, "storyboard", "run", str(file), "--estimate")
    assert estimate_run.exit_code == 0, estimate_run.output
    assert "credits for 2 shots" in estimate_run.stdout and "intro:" in estimate_run.stdout
    run = relay_cli(stack.url, key, "storyboard", "run", str(file), "--wait")
    assert run.exit_code == 0, run.output
    assert "  intro: published" in run.stdout and "  night: published" in run.stdout
    assert "assembled: /v1/jobs/" in run.stdout and "completed" in run.stdout
