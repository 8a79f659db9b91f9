"""The reconcile Lambda on AWS (moto): a result at risk publishes ``job.at_risk`` and writes the ``JobsAtRisk``
EMF figure that ``JobsAtRiskAlarm`` watches; a cancelled job's late callback through the Lambdas only records."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pytest

from handlers.lambdas import _relay, ingest, reconcile
from handlers.usecases.ingest import late_callback_key
from tests.conftest import load_fixture
from tests.integration.test_lambdas import (
    REQUEST,
    Context,
    call_api,
    drain,
    emf_lines,
    figure,
    lambda_env,
    post_callback,
)
from tests.support.servers import wait_until

pytestmark = pytest.mark.integration
__all__ = ["lambda_env"]  # the fixture, shared with test_lambdas
SCHEDULE = "aws-events/aws-lambda-rust-runtime__example-eventbridge-schedule.json"


def completed_task(env: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    engine = env["sandbox"].engine
    task: dict[str, Any] = wait_until(lambda: (t := engine.get(job["task_id"], owner="sk-evo-sandbox-local"))[
        "status"] == "completed" and t, 20, "the task")
    return task


def test_a_result_not_copied_for_hours_publishes_at_risk_and_writes_the_alarms_figure(
        lambda_env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    _, job = call_api("POST", "/v1/jobs", body=REQUEST)
    completed_task(lambda_env, job)
    store = _relay.relay().jobs
    now = time.time()
    store.update(dataclasses.replace(store.get(job["id"]), result_seen_at=now - 20 * 3600 - 1, check_at=now))
    capsys.readouterr()
    reconcile.handler(load_fixture(SCHEDULE), Context())
    lines = emf_lines(capsys.readouterr().out)
    events = [json.loads(m["body"]) for m in drain(lambda_env, lambda_env["names"].subscriber_queue("all"))]
    assert figure(lines, "JobsAtRisk") == 1
    assert [(e["type"], e["subject"]) for e in events] == [("io.seedance-relay.job.at_risk", job["id"])]
    assert store.get(job["id"]).at_risk_at is not None


def test_a_cancelled_jobs_late_callback_through_the_lambdas_is_only_recorded(lambda_env: dict[str, Any]) -> None:
    _, job = call_api("POST", "/v1/jobs", body=REQUEST)
    status, cancelled = call_api("DELETE", f"/v1/jobs/{job['id']}")
    task = completed_task(lambda_env, job)
    token = _relay.relay().signer.sign(job["id"])
    assert post_callback(job["id"], token, task) == 202
    assert ingest.handler({"Records": drain(lambda_env, lambda_env["names"].ingest_queue)}, Context()) == {
        "batchItemFailures": []}
    after = _relay.relay().jobs.get(job["id"])
    note = json.loads(b"".join(_relay.relay().blobs.read(late_callback_key(job["id"]))))
    events = [json.loads(m["body"]) for m in drain(lambda_env, lambda_env["names"].subscriber_queue("all"))]
    assert status == 200 and cancelled["status"] == "cancelled"
    assert (after.status.value, after.outputs, note["task_id"]) == ("cancelled", (), job["task_id"])
    assert [e["type"] for e in events] == ["io.seedance-relay.job.cancelled"]
