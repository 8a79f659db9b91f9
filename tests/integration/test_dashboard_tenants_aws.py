"""The dashboard's data per tenant on the AWS adapters (jobs, budget ledger and keys in DynamoDB on moto): what a
tenant's key sees, an admin's tenant filter, the usage lines, queued jobs' places, and a revoked key's session."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.adapters.aws import AwsClients, AwsNames, DynamoBudgetLedger, DynamoJobStore, DynamoKeyStore
from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.api.session import COOKIE_NAME
from handlers.app.relay import Relay
from handlers.domain.jobs import Job, JobStatus
from handlers.net.server import BackgroundServer
from handlers.usecases.budget import take_hold
from handlers.usecases.keys import create_key, revoke_key
from tests.support.fakes import FakeProvider, local_relay

pytestmark = pytest.mark.integration

ACME, BETA, ADMIN = "key-acme", "key-beta", "key-admin"
NOW = time.time()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def relay(tmp_path: Path, clients: AwsClients, jobs: DynamoJobStore, names: AwsNames) -> Iterator[Relay]:
    relay = local_relay(tmp_path, FakeProvider(), RELAY_API_KEYS=f"acme:{ACME},beta:{BETA}",
                        RELAY_ADMIN_KEYS=ADMIN, RELAY_BUDGETS="acme=100/day")
    relay.jobs = jobs
    relay.ledger = DynamoBudgetLedger(clients.dynamodb, names.table, clock=relay.clock)
    relay.keys = DynamoKeyStore(clients.dynamodb, names.table)
    for n, (tenant, status, age) in enumerate([("acme", JobStatus.PUBLISHED, 90), ("acme", JobStatus.QUEUED, 50),
                                               ("beta", JobStatus.QUEUED, 40), ("acme", JobStatus.QUEUED, 30)]):
        job = jobs.create(Job(id=f"job_{tenant}_{n}", request={"model": "m"}, fingerprint=str(n), tenant=tenant,
                              created_at=NOW - age, updated_at=NOW - age))
        jobs.update(replace(job, updated_at=NOW - age + 1, status=status))
    yield relay
    relay.close()


@pytest.fixture
def client(relay: Relay) -> Iterator[httpx.Client]:
    keys = ApiKeys(relay.settings.api_keys, admins=relay.settings.admin_keys, store=relay.keys)
    routes = dashboard_routes(relay, keys, key=b"dashboard-test-session-key-32by")
    with BackgroundServer(create_app(relay, keys, extra_routes=routes)) as url, httpx.Client(base_url=url) as client:
        yield client


def summary(client: httpx.Client, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    response = client.get(f"/dashboard/summary{query}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_tenant_sees_its_own_jobs_with_their_places_in_the_whole_queue(client: httpx.Client) -> None:
    body = summary(client, bearer(ACME))
    assert {job["id"]: job.get("queue_position") for job in body["jobs"]} == {
        "job_acme_0": None, "job_acme_1": 2, "job_acme_3": 3}  # beta's one job waits less: it is first
    assert body["counts"]["queued"]["count"] == 2
    assert client.get("/dashboard/jobs/job_beta_2", headers=bearer(ACME)).status_code == 404
    assert client.get("/dashboard/jobs/job_beta_2", headers=bearer(BETA)).json()["queue_position"] == 1


def test_an_admin_sees_every_tenant_or_one(client: httpx.Client) -> None:
    assert {job["tenant"] for job in summary(client, bearer(ADMIN))["jobs"]} == {"acme", "beta"}
    assert [job["id"] for job in summary(client, bearer(ADMIN), "?tenant=beta")["jobs"]] == ["job_beta_2"]


def test_the_usage_lines_are_those_of_get_v1_usage(client: httpx.Client, relay: Relay) -> None:
    take_hold(relay.ledger, relay.settings.budgets, "acme", "job_acme_3", 30.0, relay.clock())
    for key in (ACME, BETA, ADMIN):
        assert summary(client, bearer(key))["usage"] == client.get("/v1/usage", headers=bearer(key)).json()["usage"]
    assert [(line["tenant"], line["held"], line["remaining"]) for line in summary(client, bearer(ADMIN))["usage"]] == [
        ("acme", 30.0, 70.0)]


def test_revoking_a_stored_key_ends_its_dashboard_session(client: httpx.Client, relay: Relay) -> None:
    key, plain = create_key(relay.keys, "beta", "reader", NOW)
    token = client.post("/session", data={"api_key": plain}).cookies[COOKIE_NAME]
    client.cookies.clear()
    cookie = {"Cookie": f"{COOKIE_NAME}={token}"}
    assert [job["id"] for job in summary(client, cookie)["jobs"]] == ["job_beta_2"]
    revoke_key(relay.keys, key.id, NOW)
    assert client.get("/dashboard/summary", headers=cookie).status_code == 401
