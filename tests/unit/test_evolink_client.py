"""The EvoLink client's retry policy, error translation and headers.

httpx's MockTransport is a real in-process transport: the client's own code runs end to end.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from handlers.base.errors import ProviderRejected, ProviderUnavailable, UnknownOutcome
from handlers.provider.evolink.client import EvoLinkClient, RetryPolicy, parse_retry_after
from tests.support.logs import rendered_logs

API_KEY = "sk-evo-secret-key-123456"
TASK = {"id": "task-unified-1774857405-abc12345", "status": "pending", "progress": 0,
        "task_info": {"estimated_time": 180}}
BODY = {"model": "seedance-2.0-reference-to-video", "prompt": "a cat"}

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A scripted provider: answers with the next step each time it is called."""

    def __init__(self, *steps: httpx.Response | Exception) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def make_client(recorder: Recorder, sleeps: list[float]) -> EvoLinkClient:
    return EvoLinkClient(API_KEY, "https://api.example.test", transport=httpx.MockTransport(recorder),
                         retry=RetryPolicy(attempts=4, base_delay=0.5), sleep=sleeps.append,
                         clock=lambda: 1000.0, rand=lambda: 1.0)


def ok(body: dict[str, object] = TASK) -> httpx.Response:
    return httpx.Response(200, json=body)


def err(status: int, code: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": "m", "type": "t"}},
                          headers=headers)


def test_create_sends_auth_idempotency_key_and_user_agent() -> None:
    recorder, sleeps = Recorder(ok()), []
    task = make_client(recorder, sleeps).create_task(BODY, idempotency_key="job-1.attempt")
    sent = recorder.requests[0]
    assert task.id == TASK["id"]
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["idempotency-key"] == "job-1.attempt"
    assert sent.headers["user-agent"].startswith("seedance-relay/")
    assert json.loads(sent.content) == BODY


def test_429_is_retried_honouring_retry_after() -> None:
    recorder, sleeps = Recorder(err(429, "rate_limit_exceeded", {"Retry-After": "7"}), ok()), []
    make_client(recorder, sleeps).create_task(BODY, idempotency_key="k" * 16)
    assert sleeps == [7.0]
    assert len(recorder.requests) == 2


@pytest.mark.parametrize("status", [502, 503])
def test_502_and_503_are_retried_with_exponential_backoff(status: int) -> None:
    recorder, sleeps = Recorder(err(status, "x"), err(status, "x"), ok()), []
    make_client(recorder, sleeps).get_task(TASK["id"])  # type: ignore[arg-type]
    assert sleeps == [0.5, 1.0]


def test_retries_stop_after_the_budget_with_the_providers_code() -> None:
    recorder, sleeps = Recorder(*[err(503, "service_unavailable")] * 4), []
    with pytest.raises(ProviderUnavailable, match="503 service_unavailable") as info:
        make_client(recorder, sleeps).get_task("task-unified-1-abc")
    assert info.value.status == 503
    assert info.value.code == "service_unavailable"
    assert len(recorder.requests) == 4


def test_create_timeout_after_sending_is_an_unknown_outcome_never_retried() -> None:
    recorder, sleeps = Recorder(httpx.ReadTimeout("slow")), []
    with pytest.raises(UnknownOutcome, match="may or may not"):
        make_client(recorder, sleeps).create_task(BODY, idempotency_key="k" * 16)
    assert len(recorder.requests) == 1
    assert sleeps == []


def test_create_connect_failure_is_retried_because_nothing_was_sent() -> None:
    recorder, sleeps = Recorder(httpx.ConnectError("refused"), ok()), []
    make_client(recorder, sleeps).create_task(BODY, idempotency_key="k" * 16)
    assert len(recorder.requests) == 2


def test_get_task_timeout_is_retried() -> None:
    recorder, sleeps = Recorder(httpx.ReadTimeout("slow"), ok()), []
    assert make_client(recorder, sleeps).get_task(TASK["id"]).id == TASK["id"]  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "code"), [(400, "invalid_request"), (401, "unauthorized"),
                                              (402, "insufficient_quota"), (403, "model_access_denied")])
def test_client_errors_are_rejections_with_status_and_code(status: int, code: str) -> None:
    recorder, sleeps = Recorder(err(status, code)), []
    with pytest.raises(ProviderRejected) as info:
        make_client(recorder, sleeps).create_task(BODY, idempotency_key="k" * 16)
    assert (info.value.status, info.value.code, sleeps) == (status, code, [])


def test_500_is_not_retried_and_integer_codes_become_strings() -> None:
    recorder, sleeps = Recorder(err(500, 1001)), []
    with pytest.raises(ProviderUnavailable) as info:
        make_client(recorder, sleeps).create_task(BODY, idempotency_key="k" * 16)
    assert info.value.code == "1001"
    assert len(recorder.requests) == 1


def test_non_json_error_body_still_gives_a_code() -> None:
    recorder, sleeps = Recorder(httpx.Response(404, text="<html>nope</html>")), []
    with pytest.raises(ProviderRejected, match="http_404"):
        make_client(recorder, sleeps).get_task("task-unified-1-abc")


def test_api_key_never_reaches_a_rendered_log() -> None:
    recorder, sleeps = Recorder(httpx.ConnectError(f"refused for {API_KEY}"), ok()), []
    with rendered_logs() as stream:
        make_client(recorder, sleeps).get_task("task-unified-1-abc")
    assert "evolink.retry" in stream.getvalue()
    assert API_KEY not in stream.getvalue()


@pytest.mark.parametrize(("value", "seconds"), [("3", 3.0), ("0.5", 0.5), ("junk", None), (None, None),
                                                ("Thu, 01 Jan 1970 00:16:50 GMT", 10.0)])
def test_retry_after_accepts_seconds_and_http_dates(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=1000.0) == seconds


def test_402_insufficient_quota_is_a_rejection_never_retried_with_a_clear_message() -> None:
    """An account out of credits: ProviderRejected, code insufficient_quota, one request, no wait."""
    recorder, sleeps = Recorder(err(402, "insufficient_quota", {"Retry-After": "5"})), []
    with pytest.raises(ProviderRejected) as info:
        make_client(recorder, sleeps).create_task(BODY, idempotency_key="k" * 16)
    assert (info.value.status, info.value.code, len(recorder.requests), sleeps) == (402, "insufficient_quota", 1, [])
    assert "too few credits for this task, so none was created" in info.value.message


def test_a_429_that_outlasts_the_attempts_is_unavailable_carrying_retry_after() -> None:
    """Every attempt answered 429 with Retry-After: ProviderUnavailable whose retry_after is that wait."""
    recorder, sleeps = Recorder(*[err(429, "rate_limit_exceeded", {"Retry-After": "9"})] * 4), []
    with pytest.raises(ProviderUnavailable) as info:
        make_client(recorder, sleeps).create_task(BODY, idempotency_key="k" * 16)
    assert (info.value.status, info.value.code, info.value.retry_after) == (429, "rate_limit_exceeded", 9.0)
    assert sleeps == [9.0, 9.0, 9.0] and "Retry-After" in info.value.message
