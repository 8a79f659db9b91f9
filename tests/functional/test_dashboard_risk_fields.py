"""The dashboard's JSON on a real socket: each row carries ``at_risk_at`` and ``deadline_at``, and a job's details
list its EvoLink tasks as ``GET /v1/jobs/{id}`` does (``attempts``), not the count of submit claims."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.app.relay import Relay
from handlers.domain.jobs import Job, JobStatus, rfc3339
from handlers.net.server import BackgroundServer
from tests.support.fakes import FakeProvider, local_relay

BEARER = {"Authorization": "Bearer key-1"}
NOW = float(int(time.time()))
RETRIED = {"task_id": "task-first", "code": "service_error", "message": "the provider failed the task",
           "failed_at": "2026-05-01T12:00:00Z"}


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    relay = local_relay(tmp_path, FakeProvider())
    job = relay.jobs.create(Job(id="job_at_risk", request={"model": "m", "duration": 4}, fingerprint="f",
                                created_at=NOW - 60, updated_at=NOW - 60, model="seedance-2.0-text-to-video"))
    relay.jobs.update(replace(job, updated_at=NOW, status=JobStatus.PROCESSING, task_id="task-second", attempts=3,
                              at_risk_at=NOW - 30, deadline_at=NOW + 3600, failed_tasks=(RETRIED,)))
    yield relay
    relay.close()


@pytest.fixture
def client(relay: Relay) -> Iterator[httpx.Client]:
    keys = ApiKeys(["key-1"])
    with BackgroundServer(create_app(relay, keys, extra_routes=dashboard_routes(relay, keys))) as url, \
            httpx.Client(base_url=url, headers=BEARER) as client:
        yield client


def test_a_row_says_since_when_its_job_is_at_risk_and_its_deadline(client: httpx.Client) -> None:
    [row] = client.get("/dashboard/summary").json()["jobs"]
    assert (row["at_risk_at"], row["deadline_at"]) == (rfc3339(NOW - 30), rfc3339(NOW + 3600))


def test_the_details_list_every_task_as_the_api_does(client: httpx.Client) -> None:
    details = client.get("/dashboard/jobs/job_at_risk").json()
    assert details["attempts"] == client.get("/v1/jobs/job_at_risk").json()["attempts"] == [
        RETRIED, {"task_id": "task-second"}]
