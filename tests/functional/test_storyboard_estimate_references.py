"""A storyboard shot naming an earlier job (``job://``) is priced for the caller's tenant, on a real socket: the
referenced video counts at its real length (its file's once published, else the duration its job asked for), as
``POST /v1/estimates`` counts it for a job, never at the worst case; another tenant's job is refused naming the
shot's field; and the budget check of ``POST /v1/storyboards`` counts the same way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.app.relay import Relay
from handlers.domain.pricing import DEFAULT_PRICE_TABLE, estimate
from handlers.net.server import BackgroundServer
from handlers.usecases import submit
from tests.functional.test_references import T2V, extend, finish
from tests.support.cli import relay_cli
from tests.support.fakes import FakeProvider, local_relay
from tests.support.media_server import MediaServer

OURS, THEIRS = {"Authorization": "Bearer key-1"}, {"Authorization": "Bearer other-key-1"}
INTRO = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse at dawn", "duration": 4, "quality": "480p"}


def board(job_id: str) -> dict[str, Any]:
    """Two shots: ``intro`` of its own, and ``more`` continuing the earlier job ``job_id``."""
    return {"shots": [{"id": "intro", "request": INTRO}, {"id": "more", "request": extend(job_id)}]}


def serve(relay: Relay) -> BackgroundServer:
    return BackgroundServer(create_app(relay, ApiKeys(["key-1", "other:other-key-1"])))


@pytest.fixture
def relay(tmp_path: Path, provider: FakeProvider, media: MediaServer) -> Iterator[Relay]:
    relay = local_relay(tmp_path, provider, EVOLINK_BASE_URL=media.url(""))
    yield relay
    relay.close()


@pytest.fixture
def client(relay: Relay) -> Iterator[httpx.Client]:
    with serve(relay) as url, httpx.Client(base_url=url) as client:
        yield client


def shot_credits(answer: dict[str, Any]) -> dict[str, float]:
    return {shot["id"]: shot["credits"] for shot in answer["shots"]}


def test_a_published_earlier_job_counts_at_the_length_its_file_has(client: httpx.Client, relay: Relay,
                                                                   provider: FakeProvider) -> None:
    """The earlier job asked for 4 s; its stored video is 1 s long, and that is what the shot is priced at."""
    first = finish(relay, provider, submit(relay, T2V))
    seconds = first.outputs[0].media["duration"] if first.outputs[0].media else None
    assert seconds == pytest.approx(1.0, abs=0.1)
    response = client.post("/v1/storyboards/estimates", json=board(first.id), headers=OURS)
    assert response.status_code == 200
    assert shot_credits(response.json()) == {"intro": estimate(INTRO, [], relay.prices).credits,
                                             "more": estimate(extend(first.id), [seconds], relay.prices).credits}


def test_an_earlier_job_not_yet_published_counts_at_the_duration_it_asked_for(client: httpx.Client,
                                                                              relay: Relay) -> None:
    first = submit(relay, T2V)
    answer = client.post("/v1/storyboards/estimates", json=board(first.id), headers=OURS).json()
    more = shot_credits(answer)["more"]
    assert more == estimate(extend(first.id), [4.0], relay.prices).credits
    assert more < estimate(extend(first.id), [None], relay.prices).credits  # not the worst case


def test_an_earlier_job_and_an_earlier_shot_in_one_shot_each_count_at_their_length(client: httpx.Client,
                                                                                   relay: Relay) -> None:
    """``video_urls``: the ``intro`` shot's output (4 s, its duration) and an earlier 4 s job's (4 s)."""
    first = submit(relay, T2V)
    both = extend(first.id, prompt="@video1 then @video2")
    both["video_urls"] = ["shot://intro/output-0", f"job://{first.id}/output-0"]
    body = {"shots": [{"id": "intro", "request": INTRO}, {"id": "more", "request": both}]}
    answer = client.post("/v1/storyboards/estimates", json=body, headers=OURS).json()
    assert shot_credits(answer)["more"] == estimate(both, [4.0, 4.0], relay.prices).credits


def test_another_tenants_job_is_refused_naming_the_shots_field_as_a_create_refuses_it(client: httpx.Client,
                                                                                       relay: Relay) -> None:
    """The answer does not say the job exists: the same 400 as ``POST /v1/storyboards``, naming the field."""
    body = board(submit(relay, T2V).id)
    estimated = client.post("/v1/storyboards/estimates", json=body, headers=THEIRS)
    created = client.post("/v1/storyboards", json=body, headers=THEIRS)
    assert estimated.status_code == created.status_code == 400
    fields = [(e["field"], e["code"]) for e in estimated.json()["error"]["errors"]]
    assert fields == [(e["field"], e["code"]) for e in created.json()["error"]["errors"]]
    assert fields == [("shots[1].request.video_urls[0]", "unknown_reference")]


def test_the_budget_check_of_a_new_storyboard_counts_the_earlier_job_at_its_length(
        tmp_path: Path, provider: FakeProvider, media: MediaServer) -> None:
    """A budget that covers the shots at the referenced job's length, but not at the worst case, lets the storyboard
    in (the earlier job holds its own estimate meanwhile)."""
    prices = DEFAULT_PRICE_TABLE
    first_cost = estimate(T2V, [], prices).credits
    placeholder = extend("job_" + "0" * 26)
    real = estimate(INTRO, [], prices).credits + estimate(placeholder, [4.0], prices).credits
    worst = estimate(INTRO, [], prices).credits + estimate(placeholder, [None], prices).credits
    relay = local_relay(tmp_path, provider, EVOLINK_BASE_URL=media.url(""),
                        RELAY_BUDGETS=f"default={first_cost + (real + worst) / 2:.2f}/month")
    try:
        first = submit(relay, T2V)
        with serve(relay) as url, httpx.Client(base_url=url) as client:
            created = client.post("/v1/storyboards", json=board(first.id), headers=OURS)
        assert created.status_code == 202, created.text
    finally:
        relay.close()


def test_the_cli_estimate_prices_the_earlier_job_for_the_keys_tenant(tmp_path: Path, relay: Relay) -> None:
    """``storyboard run FILE --estimate`` asks with the caller's key, so its tenant's job (here ``other``'s, not the
    default tenant's) counts at its length."""
    first = submit(relay, T2V, tenant="other")
    file = tmp_path / "board.json"
    file.write_text(json.dumps(board(first.id)))
    more = estimate(extend(first.id), [4.0], relay.prices).credits
    with serve(relay) as url:
        result = relay_cli(url, "other-key-1", "storyboard", "run", str(file), "--estimate")
    assert result.exit_code == 0, result.output
    assert f"  more: {more:g}\n" in result.stdout


def test_an_estimate_refuses_a_shot_the_relay_would_refuse_naming_its_field(client: httpx.Client) -> None:
    """An estimate never prices a request that creating the storyboard would refuse (a quality EvoLink has not)."""
    body = {"shots": [{"id": "intro", "request": {**INTRO, "quality": "AAA"}}]}
    response = client.post("/v1/storyboards/estimates", json=body, headers=OURS)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["error"]["errors"]] == ["shots[0].request.quality"]
