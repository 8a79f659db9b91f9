"""``409 idempotency_key_reused`` on a real socket: the answer names the job that used the key first
(``job_id``), which the caller can read at once; the CLI's client keeps that whole answer."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.app.relay import Relay
from handlers.cli.remote import RelayAnswer, RelayClient
from handlers.net.server import BackgroundServer

OURS, THEIRS = "key-1", "other-key-1"
KITE = {"model": "seedance-2.0-text-to-video", "prompt": "a kite", "duration": 4, "quality": "480p"}
KEYED = {"Idempotency-Key": "order-17"}


@pytest.fixture
def url(relay: Relay) -> Iterator[str]:
    with BackgroundServer(create_app(relay, ApiKeys([OURS, f"other:{THEIRS}"]))) as url:
        yield url


def post(url: str, key: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{url}/v1/jobs", json=body, headers={"Authorization": f"Bearer {key}", **KEYED})


def test_a_reused_key_is_refused_naming_the_job_that_used_it(url: str) -> None:
    first = post(url, OURS, KITE).json()
    reused = post(url, OURS, {**KITE, "prompt": "another kite"})
    error = reused.json()["error"]
    assert reused.status_code == 409 and error["code"] == "idempotency_key_reused"
    assert error["job_id"] == first["id"] and first["id"] in error["message"]
    shown = httpx.get(f"{url}/v1/jobs/{error['job_id']}", headers={"Authorization": f"Bearer {OURS}"})
    assert shown.status_code == 200 and shown.json()["id"] == first["id"]


def test_the_same_key_of_another_tenant_is_its_own_job_not_a_conflict(url: str) -> None:
    """Keys are the tenant's own: another tenant's key never names (or meets) our job."""
    ours = post(url, OURS, KITE).json()
    theirs = post(url, THEIRS, {**KITE, "prompt": "another kite"})
    assert theirs.status_code == 202 and theirs.json()["id"] != ours["id"]


def test_the_cli_client_keeps_the_whole_answer(url: str) -> None:
    client = RelayClient(url, OURS)
    try:
        first = client.call("POST", "/v1/jobs", json=KITE, headers=KEYED)
        with pytest.raises(RelayAnswer) as caught:
            client.call("POST", "/v1/jobs", json={**KITE, "prompt": "another kite"}, headers=KEYED)
    finally:
        client.close()
    assert caught.value.status == 409 and caught.value.body == {"error": caught.value.error}
    assert caught.value.error["job_id"] == first["id"]
    assert caught.value.message.startswith("409 idempotency_key_reused: ")
