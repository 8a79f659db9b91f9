"""The Lambda entry points with real event payloads, against moto and the sandbox over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from handlers.adapters.aws import AwsNames, aws_clients
from handlers.adapters.aws.bootstrap import bootstrap
from handlers.lambdas import _relay, api, example_consumer, ingest, reconcile, submit
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
