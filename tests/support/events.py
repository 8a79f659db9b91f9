"""Real Lambda event payloads from ``../shared/fixtures/aws-events``, with our bodies put in."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.conftest import load_fixture


def sqs_event(*bodies: str, fixture: str = "aws-events/powertools-python__sqsEvent.json") -> dict[str, Any]:
    """The fixture's SQS event with one record per body (record fields copied from the fixture)."""
    event = load_fixture(fixture)
    template = event["Records"][0]
    event["Records"] = []
    for index, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record.update(messageId=f"{template['messageId']}-{index}", body=body)
        event["Records"].append(record)
    return event


def sns_sqs_event(*messages: dict[str, Any]) -> dict[str, Any]:
    """The fixture's SNS-in-SQS event, each envelope's ``Message`` replaced by one of ours."""
    event = load_fixture("aws-events/powertools-python__snsSqsEvent.json")
    template = event["Records"][0]
    envelope = json.loads(template["body"])
    event["Records"] = []
    for index, message in enumerate(messages):
        record = copy.deepcopy(template)
        record.update(messageId=f"{template['messageId']}-{index}",
                      body=json.dumps({**envelope, "Message": json.dumps(message)}))
        event["Records"].append(record)
    return event


HTTP_API = "aws-events/powertools-python__apiGatewayProxyV2Event.json"


def http_event(method: str, path: str, *, body: str | None = None, headers: dict[str, str] | None = None,
               query: str = "", fixture: str = HTTP_API) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) or Function URL event for one request to our app."""
    event = load_fixture(fixture)
    event.update(rawPath=path, rawQueryString=query, body=body, isBase64Encoded=False,
                 headers={"content-type": "application/json", **(headers or {})})
    event.pop("cookies", None)
    event.pop("queryStringParameters", None)
    event["requestContext"]["http"].update(method=method, path=path)
    return event
