"""``POST /v1/estimates`` checks ``cancel_after`` as ``POST /v1/jobs`` does, on a real socket: a deadline a submit
would refuse is refused with the same answer, and one it would accept changes nothing in the estimate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.app.relay import Relay
from handlers.domain.jobrequest import CANCEL_AFTER_MAX
from handlers.net.server import BackgroundServer

KEY = {"Authorization": "Bearer key-1"}
REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 10,
           "quality": "720p", "metadata": {"order": 7}}


@pytest.fixture
def client(relay: Relay) -> Iterator[httpx.Client]:
    with BackgroundServer(create_app(relay, ApiKeys(["key-1"]))) as url, httpx.Client(base_url=url) as client:
        yield client


def both(client: httpx.Client, body: dict[str, Any]) -> tuple[httpx.Response, httpx.Response]:
    return (client.post("/v1/estimates", json=body, headers=KEY), client.post("/v1/jobs", json=body, headers=KEY))


@pytest.mark.parametrize(("cancel_after", "code"), [
    (0, "out_of_range"), (CANCEL_AFTER_MAX + 1, "out_of_range"), (-5, "out_of_range"),
    (1.5, "invalid_type"), ("3600", "invalid_type"), (True, "invalid_type"), ([60], "invalid_type"),
])
def test_a_cancel_after_a_submit_refuses_gets_the_same_400_from_an_estimate(
        client: httpx.Client, relay: Relay, cancel_after: object, code: str) -> None:
    estimated, submitted = both(client, {**REQUEST, "cancel_after": cancel_after})
    assert estimated.status_code == submitted.status_code == 400
    assert estimated.json() == submitted.json()
    assert [(e["field"], e["code"]) for e in estimated.json()["error"]["errors"]] == [("cancel_after", code)]
    assert relay.jobs.page(status=None, limit=10, cursor=None)[0] == []


def test_a_bad_cancel_after_is_named_with_every_other_violation_in_the_submits_order(client: httpx.Client) -> None:
    body = {**REQUEST, "model": "seedance-2.0-mini-text-to-video", "quality": "1080p", "metadata": [1],
            "cancel_after": 0}
    estimated, submitted = both(client, body)
    assert estimated.json() == submitted.json()
    assert [e["field"] for e in estimated.json()["error"]["errors"]] == ["quality", "metadata", "cancel_after"]


@pytest.mark.parametrize("cancel_after", [1, 3600, CANCEL_AFTER_MAX])
def test_a_cancel_after_a_submit_accepts_leaves_the_estimate_as_it_is(client: httpx.Client,
                                                                      cancel_after: int) -> None:
    with_deadline = client.post("/v1/estimates", json={**REQUEST, "cancel_after": cancel_after}, headers=KEY)
    without = client.post("/v1/estimates", json=REQUEST, headers=KEY)
    assert with_deadline.status_code == 200
    assert with_deadline.json() == without.json()
