"""Deeply nested JSON through the real app on a real socket: 400 invalid_json naming the limit, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.app.relay import Relay
from handlers.base.jsonbody import MAX_DEPTH
from handlers.net.server import BackgroundServer

KEY = "key-1"
REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4}


@pytest.fixture
def client(relay: Relay) -> Iterator[httpx.Client]:
    keys = ApiKeys([KEY])
    app = create_app(relay, keys, extra_routes=dashboard_routes(relay, keys, key=b"nesting-test-session-key-32bytes"))
    with BackgroundServer(app) as url, httpx.Client(base_url=url) as client:
        yield client


def nested_object(depth: int) -> str:
    return '{"k": ' * depth + "1" + "}" * depth


def assert_nesting_refused(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [(e["field"], e["code"]) for e in error["errors"]] == [("$", "invalid_json")]
    assert f"more than {MAX_DEPTH} levels deep" in error["errors"][0]["message"]


def test_sign_in_with_2000_levels_is_invalid_json(client: httpx.Client) -> None:
    """POST /session with 2,000 nested arrays answers 400 invalid_json, not a RecursionError 500."""
    body = '{"api_key": ' + "[" * 2000 + "]" * 2000 + "}"
    assert_nesting_refused(client.post("/session", content=body, headers={"Content-Type": "application/json"}))


def test_job_metadata_with_5000_levels_is_invalid_json(client: httpx.Client, relay: Relay) -> None:
    """POST /v1/jobs with metadata 5,000 levels deep answers 400 invalid_json and creates no job."""
    body = json.dumps(REQUEST)[:-1] + ', "metadata": ' + nested_object(5000) + "}"
    response = client.post("/v1/jobs", content=body, headers={"Authorization": f"Bearer {KEY}",
                                                              "Content-Type": "application/json"})
    assert_nesting_refused(response)
    assert relay.jobs.page(status=None, limit=10, cursor=None)[0] == []


def test_metadata_at_the_limit_is_accepted(client: httpx.Client) -> None:
    """Nesting within the limit (the body's object plus MAX_DEPTH - 1 levels of metadata) is a normal job."""
    body = json.dumps(REQUEST)[:-1] + ', "metadata": ' + nested_object(MAX_DEPTH - 1) + "}"
    response = client.post("/v1/jobs", content=body, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 202, response.text
