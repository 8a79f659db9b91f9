"""The dashboard's data per tenant, on a real socket: a tenant's key (bearer or session) sees its own jobs, counts
and usage only, another tenant's job answers as a missing one, an admin sees every tenant and may pick one,
queued jobs show their place in the queue, and revoking a key made at run time ends its sessions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.api.session import COOKIE_NAME
from handlers.app.relay import Relay
from handlers.domain.jobs import Job, JobStatus, Output
from handlers.net.server import BackgroundServer
from handlers.usecases.admission import places
from handlers.usecases.budget import take_hold
from handlers.usecases.keys import create_key, revoke_key
from tests.support.fakes import FakeProvider, local_relay

ACME, BETA, ADMIN = "key-acme", "key-beta", "key-admin"
SESSION_KEY = b"dashboard-test-session-key-32by"
NOW = time.time()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def session(token: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE_NAME}={token}"}


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    relay = local_relay(tmp_path, FakeProvider(), RELAY_API_KEYS=f"acme:{ACME},beta:{BETA}",
                        RELAY_ADMIN_KEYS=f"ops:{ADMIN}", RELAY_BUDGETS="acme=100/day")
    yield relay
    relay.close()


def put_job(relay: Relay, job_id: str, tenant: str, status: JobStatus, *, age: float, **changes: Any) -> Job:
    """A job of ``tenant`` written straight into the store, created ``age`` seconds ago."""
    created = NOW - age
    job = relay.jobs.create(Job(id=job_id, request={"model": "m", "duration": 4}, fingerprint=job_id,
                                created_at=created, updated_at=created, model="seedance-2.0-text-to-video",
                                tenant=tenant))
    return relay.jobs.update(replace(job, updated_at=created + 1, status=status, **changes))


def store_output(relay: Relay, job_id: str) -> Output:
    stored = relay.blobs.put_stream(f"jobs/{job_id}/output-0.mp4", [b"\x00\x00\x00\x18ftypmp42"],
                                    content_type="video/mp4")
    return Output(uri=stored.uri, key=stored.key, size=stored.size, sha256=stored.sha256, content_type="video/mp4")


@pytest.fixture
def jobs(relay: Relay) -> dict[str, Job]:
    """Acme: a published job and two queued ones; beta: a published job (with a video) and a queued one.

    In the fair order (nothing in flight) beta, with the shorter backlog, is 1, then acme's older job 2 and newer 3."""
    return {"acme_published": put_job(relay, "job_acme_published", "acme", JobStatus.PUBLISHED, age=90,
                                      outputs=(store_output(relay, "job_acme_published"),)),
            "beta_published": put_job(relay, "job_beta_published", "beta", JobStatus.PUBLISHED, age=80,
                                      outputs=(store_output(relay, "job_beta_published"),)),
            "acme_queued_1": put_job(relay, "job_acme_queued_1", "acme", JobStatus.QUEUED, age=50),
            "beta_queued": put_job(relay, "job_beta_queued", "beta", JobStatus.QUEUED, age=40),
            "acme_queued_2": put_job(relay, "job_acme_queued_2", "acme", JobStatus.QUEUED, age=30,
                                     credits_estimated=24.0, credits_held=24.0)}


def serve(relay: Relay) -> BackgroundServer:
    keys = ApiKeys(relay.settings.api_keys, admins=relay.settings.admin_keys, store=relay.keys)
    return BackgroundServer(create_app(relay, keys, extra_routes=dashboard_routes(relay, keys, key=SESSION_KEY)))


@pytest.fixture
def client(relay: Relay, jobs: dict[str, Job]) -> Iterator[httpx.Client]:
    with serve(relay) as url, httpx.Client(base_url=url) as client:
        yield client


def sign_in(client: httpx.Client, key: str) -> str:
    response = client.post("/session", data={"api_key": key})
    client.cookies.clear()
    assert response.status_code == 303, response.text
    return str(response.cookies[COOKIE_NAME])


def summary(client: httpx.Client, headers: dict[str, str], query: str = "") -> dict[str, Any]:
    response = client.get(f"/dashboard/summary{query}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> set[str]:
    return {job["id"] for job in body["jobs"]}


def counted(body: dict[str, Any]) -> dict[str, int]:
    return {status: count["count"] for status, count in body["counts"].items() if count["count"]}


def test_a_tenant_s_key_sees_only_its_own_jobs_and_counts(client: httpx.Client) -> None:
    body = summary(client, bearer(ACME))
    assert ids(body) == {"job_acme_published", "job_acme_queued_1", "job_acme_queued_2"}
    assert counted(body) == {"published": 1, "queued": 2}
    assert (body["admin"], body["tenant"]) == (False, "acme") and "beta" not in str(body)


def test_a_tenant_s_key_cannot_pick_another_tenant(client: httpx.Client) -> None:
    """``tenant`` is an admin's filter: a tenant's key asking for another tenant still sees its own."""
    body = summary(client, bearer(ACME), "?tenant=beta")
    assert ids(body) == {"job_acme_published", "job_acme_queued_1", "job_acme_queued_2"}
    assert body["tenant"] == "acme" and "beta" not in str(body)


def not_found(client: httpx.Client, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    response = client.get(path, headers=headers)
    return response.status_code, response.json()


@pytest.mark.parametrize("path", ["/dashboard/jobs/{}", "/v1/jobs/{}/outputs/0"])
def test_another_tenant_s_job_answers_exactly_as_a_missing_one(client: httpx.Client, path: str) -> None:
    """The 404 for beta's job, seen by acme, is the one a job that never existed gets (its id aside)."""
    other = not_found(client, path.format("job_beta_published"), bearer(ACME))
    missing = not_found(client, path.format("job_nowhere_at_all1"), bearer(ACME))
    assert other[0] == missing[0] == 404
    assert str(other[1]).replace("job_beta_published", "job_nowhere_at_all1") == str(missing[1])
    assert client.get(path.format("job_beta_published"), headers=bearer(BETA)).status_code == 200


def test_an_admin_sees_every_tenant_s_jobs_with_their_tenant(client: httpx.Client, jobs: dict[str, Job]) -> None:
    body = summary(client, bearer(ADMIN))
    assert {job["id"]: job["tenant"] for job in body["jobs"]} == {job.id: job.tenant for job in jobs.values()}
    assert counted(body) == {"published": 2, "queued": 3}
    assert (body["admin"], body["tenant"]) == (True, None)


def test_an_admin_can_filter_by_one_tenant(client: httpx.Client) -> None:
    body = summary(client, bearer(ADMIN), "?tenant=beta")
    assert ids(body) == {"job_beta_published", "job_beta_queued"} and body["tenant"] == "beta"
    assert counted(body) == {"published": 1, "queued": 1}
    assert summary(client, bearer(ADMIN), "?tenant=nobody")["jobs"] == []


def test_a_malformed_tenant_filter_is_refused_naming_the_field(client: httpx.Client) -> None:
    response = client.get("/dashboard/summary?tenant=Not%20A%20Tenant", headers=bearer(ADMIN))
    problem = response.json()["error"]["errors"][0]
    assert response.status_code == 400 and problem["field"] == "tenant" and "a-z 0-9" in problem["message"]


def test_a_session_opened_with_a_tenant_key_sees_what_the_key_sees(client: httpx.Client) -> None:
    cookie = session(sign_in(client, ACME))
    by_session, by_key = summary(client, cookie), summary(client, bearer(ACME))
    assert by_session | {"server_time": None} == by_key | {"server_time": None}
    assert ids(by_session) == {"job_acme_published", "job_acme_queued_1", "job_acme_queued_2"}
    assert client.get("/dashboard/jobs/job_beta_published", headers=cookie).status_code == 404
    assert client.get("/v1/jobs/job_beta_published/outputs/0", headers=cookie).status_code == 404
    assert client.get("/v1/jobs/job_acme_published/outputs/0", headers=cookie).status_code == 200


def test_an_admin_s_session_sees_every_tenant(client: httpx.Client) -> None:
    body = summary(client, session(sign_in(client, ADMIN)))
    assert body["admin"] is True and {job["tenant"] for job in body["jobs"]} == {"acme", "beta"}


def test_revoking_a_key_made_at_run_time_ends_its_session(client: httpx.Client, relay: Relay) -> None:
    key, plain = create_key(relay.keys, "beta", "reader", NOW)
    cookie = session(sign_in(client, plain))
    assert ids(summary(client, cookie)) == {"job_beta_published", "job_beta_queued"}
    revoke_key(relay.keys, key.id, NOW)
    for headers in (cookie, bearer(plain)):
        response = client.get("/dashboard/summary", headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert client.get("/dashboard/jobs/job_beta_queued", headers=cookie).status_code == 401


def test_the_summary_shows_the_usage_get_v1_usage_shows(client: httpx.Client, relay: Relay) -> None:
    """The same lines: the tenant's own for its key, every tenant's for an admin."""
    take_hold(relay.ledger, relay.settings.budgets, "acme", "job_acme_queued_2", 24.0, NOW)
    take_hold(relay.ledger, relay.settings.budgets, "beta", "job_beta_queued", 10.0, NOW)
    for key in (ACME, BETA, ADMIN):
        expected = client.get("/v1/usage", headers=bearer(key)).json()["usage"]
        assert summary(client, bearer(key))["usage"] == expected, key
    acme, beta = summary(client, bearer(ADMIN))["usage"]
    assert (acme["tenant"], acme["budget"], acme["held"], acme["remaining"]) == ("acme", {"credits": 100.0,
                                                                                         "per": "day"}, 24.0, 76.0)
    assert (beta["tenant"], beta["budget"], beta["held"], beta["remaining"]) == ("beta", None, 10.0, None)
    assert [line["tenant"] for line in summary(client, bearer(ACME))["usage"]] == ["acme"]


def test_queued_rows_carry_their_place_in_the_whole_queue(client: httpx.Client, relay: Relay) -> None:
    """Places are in the fair order over every tenant's queued jobs; other rows have no place."""
    rows = {job["id"]: job for job in summary(client, bearer(ACME))["jobs"]}
    assert {job_id: row.get("queue_position") for job_id, row in rows.items()} == {
        "job_acme_queued_1": 2, "job_acme_queued_2": 3, "job_acme_published": None}
    assert "queue_position" not in rows["job_acme_published"]
    assert places(relay) == {"job_beta_queued": 1, "job_acme_queued_1": 2, "job_acme_queued_2": 3}


def test_a_job_s_details_show_its_tenant_credits_and_place(client: httpx.Client) -> None:
    details = client.get("/dashboard/jobs/job_acme_queued_2", headers=bearer(ACME)).json()
    assert (details["tenant"], details["status"], details["queue_position"]) == ("acme", "queued", 3)
    assert details["credits"] == {"estimated": 24.0, "held": 24.0, "reserved": None, "used": None}
    published = client.get("/dashboard/jobs/job_acme_published", headers=bearer(ACME)).json()
    assert "queue_position" not in published and published["tenant"] == "acme"


class CountingJobs:
    """The relay's job store, recording which of its methods are called."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.inner, name)


@pytest.mark.parametrize(("query", "reads"), [("?status=published", 0), ("", 1), ("?status=queued", 1)])
def test_the_queue_is_read_once_and_only_when_a_shown_row_is_queued(relay: Relay, jobs: dict[str, Job],
                                                                    query: str, reads: int) -> None:
    counting = CountingJobs(relay.jobs)
    relay.jobs = counting
    with serve(relay) as url, httpx.Client(base_url=url) as client:
        summary(client, bearer(ADMIN), query)
    assert counting.calls.count("queued") == reads
