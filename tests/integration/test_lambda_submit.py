"""The requests-queue Lambda on AWS (moto) with the sandbox: a message's ``cancel_after`` gives its job a deadline,
and a bad one makes a rejected job naming the field."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from handlers.lambdas import _relay, submit
from tests.integration.test_lambdas import REQUEST, Context, lambda_env
from tests.support.events import sqs_event

pytestmark = pytest.mark.integration
__all__ = ["lambda_env"]  # the fixture, shared with test_lambdas


def test_a_queued_request_with_cancel_after_gets_a_deadline(lambda_env: dict[str, Any]) -> None:
    """``cancel_after`` in the message body sets the job's ``deadline_at`` that many seconds after its creation,
    and is not sent to EvoLink."""
    event = sqs_event(json.dumps({**REQUEST, "cancel_after": 3600, "metadata": {"source": "queue"}}))
    before = time.time()
    assert submit.handler(event, Context()) == {"batchItemFailures": []}
    [job] = _relay.relay().jobs.page(status=None, limit=10, cursor=None)[0]
    assert job.status.value == "submitted" and job.metadata == {"source": "queue"}
    assert job.deadline_at == pytest.approx(job.created_at + 3600)
    assert before <= job.created_at <= time.time()
    assert "cancel_after" not in job.request


def test_a_queued_request_with_a_bad_cancel_after_is_a_rejected_job_naming_it(lambda_env: dict[str, Any]) -> None:
    event = sqs_event(json.dumps({**REQUEST, "cancel_after": 0}))
    assert submit.handler(event, Context()) == {"batchItemFailures": []}
    [job] = _relay.relay().jobs.page(status=None, limit=10, cursor=None)[0]
    assert job.status.value == "rejected" and job.error is not None
    assert [(e["field"], e["code"]) for e in job.error["errors"]] == [("cancel_after", "out_of_range")]
    assert len(lambda_env["sandbox"].engine._tasks) == 0
