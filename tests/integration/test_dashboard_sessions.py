"""Dashboard sign-out on the AWS job store (DynamoDB on moto): the revocation holds across instances."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from handlers.adapters.aws import AwsClients, AwsNames, DynamoJobStore, aws_clients
from handlers.adapters.aws.jobs import SESSION_PREFIX
from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.api.session import COOKIE_NAME, SESSION_TTL
from handlers.app.relay import Relay
from handlers.net.server import BackgroundServer
from tests.support.fakes import FakeProvider, local_relay

pytestmark = pytest.mark.integration

KEY = "key-1"
SESSION_KEY = b"dashboard-test-session-key-32by"


@pytest.fixture
def relays(tmp_path: Path, moto_server: str, clients: AwsClients, jobs: DynamoJobStore,
           names: AwsNames) -> Iterator[tuple[Relay, Relay]]:
    """Two relays whose job stores are the same DynamoDB table through two separate clients,
    as two Lambda instances would be."""
    built = []
    for n, dynamodb in enumerate((clients.dynamodb, aws_clients(AwsNames(), endpoint_url=moto_server).dynamodb)):
        relay = local_relay(tmp_path / f"instance-{n}", FakeProvider())
        relay.jobs = DynamoJobStore(dynamodb, names.table)
        built.append(relay)
    yield built[0], built[1]
    for relay in built:
        relay.close()


def serve(relay: Relay) -> BackgroundServer:
    keys = ApiKeys([KEY])
    return BackgroundServer(create_app(relay, keys, extra_routes=dashboard_routes(relay, keys, key=SESSION_KEY)))


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE_NAME}={token}"}


def test_a_session_signed_out_on_one_instance_is_refused_by_another(relays: tuple[Relay, Relay]) -> None:
    first, second = relays
    with serve(first) as one, serve(second) as other, httpx.Client() as client:
        token = client.post(f"{one}/session", data={"api_key": KEY}).cookies[COOKIE_NAME]
        client.cookies.clear()
        assert client.get(f"{other}/dashboard/summary", headers=cookie(token)).status_code == 200
        assert client.post(f"{one}/session/logout", headers=cookie(token)).status_code == 303
        client.cookies.clear()
        for url in (one, other):
            response = client.get(f"{url}/dashboard/summary", headers=cookie(token))
            assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_the_revocation_is_an_item_the_table_s_ttl_removes_when_the_session_would_expire(
        relays: tuple[Relay, Relay], clients: AwsClients, names: AwsNames) -> None:
    first, _ = relays
    with serve(first) as url, httpx.Client() as client:
        token = client.post(f"{url}/session", data={"api_key": KEY}).cookies[COOKIE_NAME]
        client.cookies.clear()
        client.post(f"{url}/session/logout", headers=cookie(token))
    session_id = token.split(".")[2]
    item = clients.dynamodb.get_item(TableName=names.table, Key={"id": {"S": SESSION_PREFIX + session_id}})["Item"]
    assert set(item) == {"id", "expires_at"}, "no index attribute: no page or count ever reads it"
    assert int(item["expires_at"]["N"]) == pytest.approx(time.time() + SESSION_TTL, abs=5)
    assert int(item["expires_at"]["N"]) > int(token.split(".")[1])
