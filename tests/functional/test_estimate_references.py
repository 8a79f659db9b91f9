"""``POST /v1/estimates`` with ``job://`` references, on a real socket: an earlier job's output counts at its real
length (its media facts once published, else the duration its job asked for), never at the worst case; another
tenant's job is refused as ``POST /v1/jobs`` refuses it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.app.relay import Relay
from handlers.domain.pricing import estimate
from handlers.net.server import BackgroundServer
from handlers.usecases import submit
from tests.functional.test_references import T2V, extend, finish
from tests.support.fakes import FakeProvider, local_relay
from tests.support.media_server import MediaServer

OURS, THEIRS = {"Authorization": "Bearer key-1"}, {"Authorization": "Bearer other-key-1"}


@pytest.fixture
def relay(tmp_path: Path, provider: FakeProvider, media: MediaServer) -> Iterator[Relay]:
    relay = local_relay(tmp_path, provider, EVOLINK_BASE_URL=media.url(""))
    yield relay
    relay.close()


@pytest.fixture
def client(relay: Relay) -> Iterator[httpx.Client]:
    keys = ApiKeys(["key-1", "other:other-key-1"])
    with BackgroundServer(create_app(relay, keys)) as url, httpx.Client(base_url=url) as client:
        yield client


def test_a_published_output_counts_at_the_length_its_file_has(client: httpx.Client, relay: Relay,
                                                              provider: FakeProvider) -> None:
    """The earlier job asked for 4 s; its stored video is 1 s long, and that is what the estimate bills."""
    first = finish(relay, provider, submit(relay, T2V))
    assert first.outputs[0].media is not None and first.outputs[0].media["duration"] == pytest.approx(1.0, abs=0.1)
    body = extend(first.id)
    answer = client.post("/v1/estimates", json=body, headers=OURS).json()
    assert answer["assumptions"] == []
    assert answer["credits"] == estimate(body, [first.outputs[0].media["duration"]], relay.prices).credits


def test_an_output_not_yet_published_counts_at_the_duration_its_job_asked_for(client: httpx.Client,
                                                                             relay: Relay) -> None:
    first = submit(relay, T2V)
    body = extend(first.id)
    answer = client.post("/v1/estimates", json=body, headers=OURS).json()
    assert answer["assumptions"] == [] and answer["credits"] == estimate(body, [4.0], relay.prices).credits


def test_another_tenants_job_is_refused_as_a_submit_refuses_it(client: httpx.Client, relay: Relay) -> None:
    """The answer does not even say the job exists: the same 400 as ``POST /v1/jobs``, naming the field."""
    body = extend(submit(relay, T2V).id)
    estimated = client.post("/v1/estimates", json=body, headers=THEIRS)
    submitted = client.post("/v1/jobs", json=body, headers=THEIRS)
    assert estimated.status_code == submitted.status_code == 400
    assert estimated.json() == submitted.json()
    assert [(e["field"], e["code"]) for e in estimated.json()["error"]["errors"]] == [
        ("video_urls[0]", "unknown_reference")]
