"""``POST /v1/estimates`` on a real socket: the credits a job body would cost, with nothing created."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.estimates import estimate_routes
from handlers.app.relay import Relay
from handlers.domain.pricing import DEFAULT_PRICE_TABLE, PriceTable, Rate
from handlers.net.netguard import AddressPolicy
from handlers.net.server import BackgroundServer
from handlers.sandbox.media import render_video
from handlers.usecases.estimate import Estimator, estimate_job, estimator_for, reference_policy, reference_prober
from tests.support.fakes import FakeProvider, local_relay
from tests.support.media_server import MediaServer

KEY = {"Authorization": "Bearer key-1"}
R2V = "seedance-2.0-reference-to-video"
REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 10,
           "quality": "720p", "metadata": {"order": 7}}


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def relay(tmp_path: Path, provider: FakeProvider) -> Iterator[Relay]:
    relay = local_relay(tmp_path, provider)
    yield relay
    relay.close()


@pytest.fixture
def client(relay: Relay) -> Iterator[httpx.Client]:
    with BackgroundServer(create_app(relay, ApiKeys(["key-1"]))) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.fixture(scope="module")
def media() -> Iterator[MediaServer]:
    with MediaServer() as server:
        server.add("/four.mp4", render_video(seconds=4, width=640, height=640), content_type="video/mp4")
        server.add("/twelve.mp4", render_video(seconds=12, width=640, height=640, audio=False),
                   content_type="video/mp4")
        yield server


def probing_client(relay: Relay, media: MediaServer, prices: PriceTable = DEFAULT_PRICE_TABLE) -> BackgroundServer:
    """The estimate route alone, its probe allowed to reach the test's media server."""
    policy = AddressPolicy(allow_http=True, allowed_hosts=frozenset({media.host}))
    routes = estimate_routes(relay, ApiKeys(["key-1"]), estimator=Estimator(prices, reference_prober(policy)))
    return BackgroundServer(Starlette(routes=routes))


def test_an_estimate_answers_credits_breakdown_and_assumptions(client: httpx.Client) -> None:
    """The seed's 10 s of 720p is 60 credits, with its breakdown; nothing assumed."""
    response = client.post("/v1/estimates", json=REQUEST, headers=KEY)
    assert response.status_code == 200
    answer = response.json()
    assert answer["credits"] == 60.0 and answer["assumptions"] == []
    assert answer["breakdown"][0] == {"what": "output video", "seconds": 10, "rate": 6.0, "credits": 60.0}


def test_an_estimate_creates_nothing(client: httpx.Client, relay: Relay, provider: FakeProvider) -> None:
    """No job is stored and the provider is never called."""
    client.post("/v1/estimates", json=REQUEST, headers=KEY, params={"x": 1})
    assert relay.jobs.page(status=None, limit=10, cursor=None)[0] == []
    assert provider.creates == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
def test_an_estimate_needs_the_api_key(client: httpx.Client, headers: dict[str, str]) -> None:
    """Like every job route, an estimate needs a valid bearer key."""
    response = client.post("/v1/estimates", json=REQUEST, headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_an_invalid_body_gets_the_same_error_as_a_submit(client: httpx.Client) -> None:
    """Every violation, request and metadata alike, in the error body POST /v1/jobs answers."""
    body = {**REQUEST, "model": "seedance-2.0-mini-text-to-video", "quality": "1080p", "metadata": [1]}
    estimated = client.post("/v1/estimates", json=body, headers=KEY)
    submitted = client.post("/v1/jobs", json=body, headers=KEY)
    assert estimated.status_code == submitted.status_code == 400
    assert estimated.json() == submitted.json()
    fields = [e["field"] for e in estimated.json()["error"]["errors"]]
    assert fields == ["quality", "metadata"]


def test_a_body_that_is_not_json_is_refused(client: httpx.Client) -> None:
    """Bytes that are not a JSON object are a 400 invalid_json, as for a submit."""
    response = client.post("/v1/estimates", content=b"{nope", headers=KEY)
    assert response.status_code == 400 and response.json()["error"]["errors"][0]["code"] == "invalid_json"


def test_a_reference_video_the_relay_may_not_read_is_billed_at_15_s(client: httpx.Client) -> None:
    """A reference the probe cannot read (here: nothing listens there) counts as 15 s, and says why."""
    body = {"model": R2V, "prompt": "@video1", "video_urls": ["http://127.0.0.1:9/clip.mp4"], "duration": 5,
            "quality": "720p"}
    answer = client.post("/v1/estimates", json=body, headers=KEY).json()
    with_video = DEFAULT_PRICE_TABLE.rates["standard"]["720p"].with_video
    assert answer["credits"] == round((15 + 5) * with_video, 2)
    assert answer["assumptions"][0].startswith("reference video 1 (video_urls[0]) could not be read; billed as 15 s")
    assert answer["assumptions"][1].startswith("video_urls[0] was not read: ")


def test_the_probe_reads_each_reference_videos_length(relay: Relay, media: MediaServer) -> None:
    """Two readable videos of 4 s and 12 s bill (max(16, 8) + 8) s at the with-video rate."""
    flat = PriceTable({f: {q: Rate(9.0, 1.0) for q in qs} for f, qs in DEFAULT_PRICE_TABLE.rates.items()})
    body = {"model": R2V, "prompt": "@video1 then @video2", "duration": 8, "quality": "480p",
            "video_urls": [media.url("/four.mp4"), media.url("/twelve.mp4")]}
    with probing_client(relay, media, flat) as url:
        answer = httpx.post(f"{url}/v1/estimates", json=body, headers=KEY).json()
    assert answer["assumptions"] == []
    assert answer["credits"] == pytest.approx(16 + 8, abs=0.1)
    assert answer["breakdown"][1]["what"].startswith("reference video input: max(input 16")


def test_the_relays_estimator_reads_its_own_uploads_in_sandbox_mode(relay: Relay) -> None:
    """With the sandbox provider, references on the relay's own address (its uploads) may be probed."""
    assert estimator_for(relay).probe is not None
    policy = reference_policy(relay.settings, relay.callback_base)
    assert policy.allowed_hosts == frozenset({relay.callback_base.split("://", 1)[1]}) and policy.allow_http


def test_an_estimator_without_a_probe_assumes_the_worst_case() -> None:
    """No probe: every reference video is billed at 15 s in all, and the estimate says it was not probed."""
    body = {"model": R2V, "prompt": "p", "video_urls": ["https://e.com/a.mp4"], "duration": 4}
    result = estimate_job(Estimator(), body)
    assert result.assumptions[-1] == "reference videos were not probed for their length"
    assert result.breakdown[1]["seconds"] == 15
