"""The Lambda entry points with real event payloads, against moto and the sandbox over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import jsonschema
import pytest

from handlers.adapters.aws import AwsNames, aws_clients
from handlers.adapters.aws.bootstrap import bootstrap
from handlers.lambdas import _relay, api, example_consumer, ingest, reconcile, submit
from handlers.provider.evolink.task import new_task_id
from handlers.usecases.ingest import MAX_OTHER_TASKS, late_callback_key
from tests.conftest import load_fixture
from tests.support.events import http_event, sqs_event
from tests.support.servers import running_sandbox, wait_until

pytestmark = pytest.mark.integration
KEY = "lambda-test-key-123"
REQUEST = {"model": "seedance-2.0-reference-to-video", "prompt": "Use image 1 as the first frame",
           "image_urls": ["https://example.com/a.png"], "duration": 4, "quality": "480p"}


class Context:
    aws_request_id = "req-1"


@pytest.fixture
def lambda_env(moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    suffix = uuid.uuid4().hex[:8]
    with running_sandbox(tmp_path / "sandbox", speed=400.0) as sandbox:
        env = {"RELAY_BACKEND": "aws", "AWS_ENDPOINT_URL": moto_server, "EVOLINK_BASE_URL": sandbox.url,
               "RELAY_API_KEYS": KEY, "RELAY_CALLBACK_SECRET": "k1:" + "c" * 32,
               "RELAY_PUBLIC_URL": "https://relay.example", "RELAY_SUBSCRIBERS": "example:completed,all:*",
               "RELAY_TABLE": f"jobs-{suffix}", "RELAY_BUCKET": f"videos-{suffix}",
               "RELAY_INGEST_QUEUE": f"ingest-{suffix}", "RELAY_REQUESTS_QUEUE": f"requests-{suffix}",
               "RELAY_TOPIC": f"events-{suffix}", "RELAY_SUBSCRIBER_QUEUE_PREFIX": f"sub-{suffix}-"}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("EVOLINK_API_KEY", raising=False)
        names = AwsNames.from_env(env)
        bootstrap(aws_clients(names), names, {"example": ["io.seedance-relay.job.completed"], "all": ["*"]})
        _relay.settings.cache_clear()
        _relay.relay.cache_clear()
        api._adapter.cache_clear()
        yield {"names": names, "sandbox": sandbox, "sqs": boto3.client("sqs", endpoint_url=moto_server),
               "s3": boto3.client("s3", endpoint_url=moto_server)}
        _relay.relay().close()
        _relay.relay.cache_clear()
        _relay.settings.cache_clear()
        api._adapter.cache_clear()


def call_api(method: str, path: str, *, body: Any = None, query: str = "", key: str | None = KEY,
             fixture: str = "aws-events/powertools-python__apiGatewayProxyV2Event.json") -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    event = http_event(method, path, body=None if body is None else json.dumps(body), headers=headers,
                       query=query, fixture=fixture)
    response = api.handler(event, Context())
    return response["statusCode"], json.loads(response["body"])


def drain(env: dict[str, Any], queue_name: str) -> list[dict[str, Any]]:
    """Receive every message of a queue as an SQS Lambda event would carry them."""
    url = env["sqs"].get_queue_url(QueueName=queue_name)["QueueUrl"]
    messages = env["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                          MessageAttributeNames=["All"]).get("Messages", [])
    return [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
             "attributes": m.get("Attributes", {}), "messageAttributes": m.get("MessageAttributes", {}),
             "eventSource": "aws:sqs"} for m in messages]


def test_api_health_over_http_api_and_function_url(lambda_env: dict[str, Any]) -> None:
    for fixture in ("aws-events/powertools-python__apiGatewayProxyV2Event.json",
                    "aws-events/powertools-python__lambdaFunctionUrlEvent.json",
                    "aws-events/aws-lambda-go__apigw-v2-request-no-authorizer.json"):
        status, body = call_api("GET", "/healthz", key=None, fixture=fixture)
        assert (status, body["backend"]) == (200, "aws")
    assert call_api("GET", "/v1/jobs", key="wrong")[0] == 401


def test_a_job_through_the_lambdas_lands_in_s3_and_fans_out(lambda_env: dict[str, Any]) -> None:
    names: AwsNames = lambda_env["names"]
    status, job = call_api("POST", "/v1/jobs", body={**REQUEST, "metadata": {"team": "ads"}})
    assert status == 202 and job["status"] == "submitted"
    engine = lambda_env["sandbox"].engine
    task = wait_until(lambda: (t := engine.get(job["task_id"], owner="sk-evo-sandbox-local"))["status"]
                      == "completed" and t, 20, "the task")
    callback_path = f"/v1/callbacks/evolink/{job['id']}"
    token = engine._tasks[job["task_id"]].callback_url.split("token=")[1]  # what EvoLink would call
    event = http_event("POST", callback_path, body=json.dumps(task), query=f"token={token}",
                       fixture="aws-events/powertools-python__lambdaFunctionUrlEvent.json")
    assert api.handler(event, Context())["statusCode"] == 202
    records = drain(lambda_env, names.ingest_queue)
    assert ingest.handler({"Records": records}, Context()) == {"batchItemFailures": []}
    status, final = call_api("GET", f"/v1/jobs/{job['id']}")
    [output] = final["outputs"]
    bucket, key = urlsplit(output["uri"]).netloc, urlsplit(output["uri"]).path.lstrip("/")
    head = lambda_env["s3"].head_object(Bucket=bucket, Key=key)
    assert final["status"] == "published" and head["ContentLength"] == output["size"]
    assert head["ServerSideEncryption"] in ("AES256", "aws:kms")
    consumed = drain(lambda_env, names.subscriber_queue("example"))
    assert [json.loads(r["body"])["subject"] for r in consumed] == [job["id"]]
    assert example_consumer.handler({"Records": consumed}, Context()) == {"batchItemFailures": []}


def test_the_ingest_handler_reports_only_failed_records(lambda_env: dict[str, Any]) -> None:
    event = sqs_event(json.dumps({"job_id": "job_missing"}), "not json")
    response = ingest.handler(event, Context())
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}


def test_the_requests_queue_submits_and_rejects_with_a_named_field(lambda_env: dict[str, Any]) -> None:
    good = json.dumps({**REQUEST, "metadata": {"source": "queue"}})
    bad = json.dumps({**REQUEST, "duration": 40})
    event = sqs_event(good, bad, good)
    assert submit.handler(event, Context()) == {"batchItemFailures": []}
    _, page = call_api("GET", "/v1/jobs", query="limit=10")
    statuses = sorted(j["status"] for j in page["jobs"])
    rejected = next(j for j in page["jobs"] if j["status"] == "rejected")
    assert statuses == ["rejected", "submitted", "submitted"]  # two records, two message ids, two jobs
    assert rejected["error"]["errors"][0]["field"] == "duration"
    assert len(lambda_env["sandbox"].engine._tasks) == 2


def test_a_redelivered_request_never_submits_twice(lambda_env: dict[str, Any]) -> None:
    event = sqs_event(json.dumps(REQUEST))
    submit.handler(event, Context())
    submit.handler(event, Context())
    assert len(lambda_env["sandbox"].engine._tasks) == 1


def test_the_scheduled_reconciler_runs_on_the_eventbridge_payload(lambda_env: dict[str, Any]) -> None:
    schedule = load_fixture("aws-events/aws-lambda-rust-runtime__example-eventbridge-schedule.json")
    assert reconcile.handler(schedule, Context()) == {}


EMF_SCHEMA = {  # the Embedded Metric Format specification's structure of one log line
    "type": "object", "required": ["_aws"],
    "properties": {"_aws": {
        "type": "object", "required": ["Timestamp", "CloudWatchMetrics"],
        "properties": {
            "Timestamp": {"type": "integer", "minimum": 0},
            "CloudWatchMetrics": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["Namespace", "Dimensions", "Metrics"],
                "properties": {
                    "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                    "Dimensions": {"type": "array", "items": {
                        "type": "array", "maxItems": 30, "items": {"type": "string", "minLength": 1}}},
                    "Metrics": {"type": "array", "minItems": 1, "maxItems": 100, "items": {
                        "type": "object", "required": ["Name"],
                        "properties": {"Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                                       "Unit": {"type": "string"}}}}}}}}}},
}


def emf_lines(stdout: str) -> list[dict[str, Any]]:
    """The EMF lines among ``stdout``'s, each checked against the spec (schema, and every dimension
    and metric named in ``_aws`` present at the top level with a string or numeric value)."""
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{") and '"_aws"' in line]
    for line in lines:
        jsonschema.validate(line, EMF_SCHEMA)
        for directive in line["_aws"]["CloudWatchMetrics"]:
            for dimension in {name for group in directive["Dimensions"] for name in group}:
                assert isinstance(line[dimension], str)
            for metric in directive["Metrics"]:
                values = line[metric["Name"]]
                assert all(isinstance(v, int | float) for v in (values if isinstance(values, list) else [values]))
    return lines


def figure(lines: list[dict[str, Any]], name: str, **dimensions: str) -> float:
    """The sum of metric ``name`` over the lines whose dimensions include ``dimensions``."""
    total = 0.0
    for line in lines:
        if name in line and all(line.get(k) == v for k, v in dimensions.items()):
            values = line[name]
            total += sum(values) if isinstance(values, list) else values
    return total


def published_job(env: dict[str, Any]) -> dict[str, Any]:
    """A job submitted, called back and ingested through the Lambda entries; its task and callback token."""
    _, job = call_api("POST", "/v1/jobs", body=REQUEST)
    engine = env["sandbox"].engine
    task = wait_until(lambda: (t := engine.get(job["task_id"], owner="sk-evo-sandbox-local"))["status"]
                      == "completed" and t, 20, "the task")
    token = engine._tasks[job["task_id"]].callback_url.split("token=")[1]
    post_callback(job["id"], token, task)
    ingest.handler({"Records": drain(env, env["names"].ingest_queue)}, Context())
    return {**job, "token": token}


def post_callback(job_id: str, token: str, body: dict[str, Any]) -> int:
    event = http_event("POST", f"/v1/callbacks/evolink/{job_id}", body=json.dumps(body), query=f"token={token}",
                       fixture="aws-events/powertools-python__lambdaFunctionUrlEvent.json")
    return int(api.handler(event, Context())["statusCode"])


def test_the_ingest_function_writes_its_figures_as_emf_lines(lambda_env: dict[str, Any],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    _, job = call_api("POST", "/v1/jobs", body=REQUEST)
    submitted = emf_lines(capsys.readouterr().out)
    engine = lambda_env["sandbox"].engine
    task = wait_until(lambda: (t := engine.get(job["task_id"], owner="sk-evo-sandbox-local"))["status"]
                      == "completed" and t, 20, "the task")
    post_callback(job["id"], engine._tasks[job["task_id"]].callback_url.split("token=")[1], task)
    capsys.readouterr()
    event = sqs_event(*[r["body"] for r in drain(lambda_env, lambda_env["names"].ingest_queue)])
    assert ingest.handler(event, Context()) == {"batchItemFailures": []}
    lines = emf_lines(capsys.readouterr().out)
    assert {d["Namespace"] for line in lines for d in line["_aws"]["CloudWatchMetrics"]} == {"SeedanceRelay"}
    assert all(["service"] in d["Dimensions"] for line in lines for d in line["_aws"]["CloudWatchMetrics"])
    assert figure(submitted, "ProviderCalls", operation="create_task") == 1
    assert figure(lines, "IngestAttempts", outcome="done") == 1
    assert figure(lines, "ProviderCalls", operation="get_task") == 1
    assert figure(lines, "CopiedBytes") > 0 and figure(lines, "CopyDuration") > 0


def test_the_api_function_counts_requests_and_callbacks_in_emf(lambda_env: dict[str, Any],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    _, job = call_api("POST", "/v1/jobs", body=REQUEST)
    token = _relay.relay().signer.sign(job["id"])
    capsys.readouterr()
    assert post_callback(job["id"], token, {"id": job["task_id"]}) == 202
    assert post_callback(job["id"], "wrong", {}) == 401
    lines = emf_lines(capsys.readouterr().out)
    route = "/v1/callbacks/evolink/{job_id}"
    assert figure(lines, "HttpRequests", route=route, status_class="2xx") == 1
    assert figure(lines, "HttpRequests", route=route, status_class="4xx") == 1
    assert figure(lines, "CallbacksAccepted") == 1
    assert figure(lines, "CallbacksRefused", reason="unauthorized") == 1


def test_an_invocation_with_nothing_to_count_writes_no_emf_line(lambda_env: dict[str, Any],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    schedule = load_fixture("aws-events/aws-lambda-rust-runtime__example-eventbridge-schedule.json")
    reconcile.handler(schedule, Context())
    assert emf_lines(capsys.readouterr().out) == []


def test_replayed_callbacks_for_an_ended_job_on_aws_note_only_the_first(lambda_env: dict[str, Any]) -> None:
    job = published_job(lambda_env)
    before = _relay.relay().jobs.get(job["id"])
    task_ids = [new_task_id(time.time()) for _ in range(150)]
    for task_id in task_ids:
        assert post_callback(job["id"], job["token"], {"id": task_id, "status": "completed"}) == 202
    while records := drain(lambda_env, lambda_env["names"].ingest_queue):
        assert ingest.handler({"Records": records}, Context()) == {"batchItemFailures": []}
    after = _relay.relay().jobs.get(job["id"])
    note = json.loads(b"".join(_relay.relay().blobs.read(late_callback_key(job["id"]))))
    assert (after.version, after.other_tasks, after.status.value) == (before.version, (), "published")
    assert note["task_id"] in task_ids and note["status"] == "published"


def test_replayed_callbacks_for_a_running_job_on_aws_keep_at_most_ten_other_tasks(
        lambda_env: dict[str, Any]) -> None:
    _, job = call_api("POST", "/v1/jobs", body={**REQUEST, "prompt": "a second job"})
    token = _relay.relay().signer.sign(job["id"])
    for task_id in [new_task_id(time.time()) for _ in range(150)]:
        assert post_callback(job["id"], token, {"id": task_id}) == 202
    while records := drain(lambda_env, lambda_env["names"].ingest_queue):
        ingest.handler({"Records": records}, Context())
    assert len(_relay.relay().jobs.get(job["id"]).other_tasks) == MAX_OTHER_TASKS


def test_a_queued_request_past_its_tenants_budget_is_a_rejected_job_with_its_event(
        lambda_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The Tenant attribute names the tenant; past its budget the request becomes a rejected job
    (budget_exceeded) and event, and nothing reaches the sandbox."""
    monkeypatch.setenv("RELAY_API_KEYS", f"{KEY},acme:acme-key-1")
    monkeypatch.setenv("RELAY_BUDGETS", "acme=5/day")
    _relay.settings.cache_clear()
    _relay.relay.cache_clear()
    api._adapter.cache_clear()
    event = sqs_event(json.dumps(REQUEST))
    event["Records"][0]["messageAttributes"] = {"Tenant": {"stringValue": "acme", "dataType": "String"}}
    assert submit.handler(event, Context()) == {"batchItemFailures": []}
    [job] = _relay.relay().jobs.page(tenant="acme")[0]
    assert job.status.value == "rejected" and job.error is not None and job.error["code"] == "budget_exceeded"
    assert job.event_ids and len(lambda_env["sandbox"].engine._tasks) == 0
    consumed = drain(lambda_env, lambda_env["names"].subscriber_queue("all"))
    assert [json.loads(r["body"])["tenant"] for r in consumed] == ["acme"]
