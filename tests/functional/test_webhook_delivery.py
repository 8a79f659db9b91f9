"""Webhook delivery over real sockets: the SQLite event bus, a receiver verifying with the reference library."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers.adapters.local import SqliteEventBus
from handlers.app.settings import Settings
from handlers.app.wiring import subscriber_filters
from handlers.base.errors import ConfigurationError, NotFound
from handlers.base.logs import get_logger
from handlers.domain.events import SOURCE, event_id, event_type
from handlers.lambdas.webhooks import WebhookHandler, build_handler
from handlers.net.server import BackgroundServer, free_port
from handlers.ports import Message, WorkQueue
from handlers.webhooks import (
    RETRY_SCHEDULE,
    Outcome,
    WebhookDeliverer,
    build_deliverer,
    deliver_from_queue,
    load_targets,
    retry_delay,
    run_webhook_loop,
)
from tests.support.events import sns_sqs_event, sqs_event
from tests.support.fakes import Clock
from tests.support.faults import QueueWrapper
from tests.support.logs import rendered_logs

NEW = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOOK_PATH = "/hooks/crm"
Step = int | float | tuple[int, dict[str, str]]  # a status; seconds to stall, then 200; a status with headers


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Hook:
    """A receiver that verifies each POST with ``standardwebhooks`` and answers by its ``plan`` (then 200)."""

    secrets: tuple[str, ...]
    plan: list[Step] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.body()
            headers = dict(request.headers)
            verified = self._verified(body, headers)
            with self.lock:
                self.deliveries.append(Delivery(request.url.path, headers, body, verified))
                step = self.plan.pop(0) if self.plan else 200
            if isinstance(step, float):
                await asyncio.sleep(step)
                return Response(status_code=200)
            status, extra = step if isinstance(step, tuple) else (step, {})
            if 300 <= status < 400:
                extra = {"location": "/moved"}
            return Response(status_code=status if verified else 401, headers=extra)

        return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])

    def _verified(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
            except WebhookVerificationError:
                continue
            return True
        return False


@contextmanager
def running_hook(*secrets: str, plan: list[Step] | None = None) -> Iterator[Hook]:
    hook = Hook(secrets=secrets or (NEW,), plan=list(plan or []))
    server = BackgroundServer(hook.app())
    hook.url = server.start() + HOOK_PATH
    try:
        yield hook
    finally:
        server.stop()


FakeClock = Clock


class RecordingQueue(QueueWrapper):
    """A WorkQueue that passes everything to ``inner`` and records acks and ``retry_later`` delays."""

    def __init__(self, inner: WorkQueue) -> None:
        super().__init__(inner)
        self.acked: list[str] = []
        self.delays: list[float] = []

    def ack(self, message: Message) -> None:
        self.acked.append(message.id)
        self.inner.ack(message)

    def retry_later(self, message: Message, delay: float) -> None:
        self.delays.append(delay)
        self.inner.retry_later(message, delay)


def env_for(hook: Hook, **extra: str) -> dict[str, str]:
    return {"RELAY_SUBSCRIBERS": "crm:completed+failed,archive:*", "RELAY_WEBHOOKS": f"crm={hook.url}",
            "RELAY_WEBHOOK_SECRET_CRM": f"{NEW} {OLD}", **extra}


def cloud_event(job_id: str, outcome: str = "completed") -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id(job_id, outcome), "source": SOURCE, "type": event_type(outcome),
            "subject": job_id, "time": "2026-11-25T18:22:55.783569Z", "datacontenttype": "application/json",
            "data": {"job_id": job_id, "outcome": outcome, "metadata": {"title": "café ☕"}}}


@dataclass
class Relay:
    hook: Hook
    bus: SqliteEventBus
    clock: FakeClock
    deliverer: WebhookDeliverer
    queue: RecordingQueue

    def run(self) -> int:
        return deliver_from_queue(self.deliverer, "crm", self.queue)

    def drain(self) -> int:
        total = 0
        while count := self.run():
            total += count
        return total


@contextmanager
def relay_with_hook(tmp_path: Path, plan: list[Step] | None = None, *, max_receives: int = 5,
                    timeout: float = 5.0) -> Iterator[Relay]:
    """The bus in ``tmp_path`` on a fake clock, one webhook ``crm`` to a real receiver, jitter off."""
    with running_hook(NEW, plan=plan) as hook:
        settings = Settings.from_env(env_for(hook))
        clock = FakeClock(time.time())
        bus = SqliteEventBus(tmp_path / "relay.sqlite3", subscriber_filters(settings), max_receives=max_receives,
                             clock=clock, sleep=clock.sleep)
        deliverer = WebhookDeliverer(load_targets(settings), timeout=timeout, random=lambda: 0.5)
        try:
            yield Relay(hook, bus, clock, deliverer, RecordingQueue(bus.subscriber("crm")))
        finally:
            deliverer.close()
            bus.close()


# --- the bus, a webhook subscriber and a verifying receiver ---------------------------------------

def test_only_matching_events_are_delivered_each_verified_by_the_reference_library(tmp_path: Path) -> None:
    """Three events, one of a type the webhook's filter leaves out: exactly the two others arrive, verified."""
    with relay_with_hook(tmp_path) as relay:
        events = [cloud_event("job_1", "completed"), cloud_event("job_2", "cancelled"), cloud_event("job_3", "failed")]
        for event in events:
            relay.bus.publish(event)
        assert relay.drain() == 2
        deliveries = relay.hook.deliveries
        assert [d.event for d in deliveries] == [events[0], events[2]]
        assert all(d.verified for d in deliveries)
        assert [d.headers["webhook-id"] for d in deliveries] == [events[0]["id"], events[2]["id"]]
        assert all(d.headers["content-type"] == "application/json" for d in deliveries)
        assert all(d.headers["user-agent"].startswith("seedance-relay/") for d in deliveries)
        assert all(d.headers["user-agent"].endswith(" (+webhooks)") for d in deliveries)
        assert all(len(d.headers["webhook-signature"].split(" ")) == 2 for d in deliveries)
        assert relay.queue.depth() == {"visible": 0, "in_flight": 0, "dead": 0}
        assert relay.bus.subscriber("archive").depth()["visible"] == 3


def test_a_receiver_holding_only_the_old_secret_still_verifies(tmp_path: Path) -> None:
    """During a rotation (both secrets configured) a receiver not yet moved to the new secret accepts."""
    with running_hook(OLD) as hook:
        deliverer = WebhookDeliverer(load_targets(Settings.from_env(env_for(hook))))
        try:
            assert deliverer.deliver("crm", cloud_event("job_1")).outcome is Outcome.DELIVERED
        finally:
            deliverer.close()
    assert hook.deliveries[0].verified


def test_failures_are_retried_on_the_schedule_until_delivered(tmp_path: Path) -> None:
    """500, 500, then 200: delivered on the third attempt, after waits of 5 s then 300 s, same webhook-id."""
    with relay_with_hook(tmp_path, plan=[500, 500]) as relay:
        relay.bus.publish(cloud_event("job_1"))
        assert relay.run() == 1
        assert relay.queue.delays == [5.0]
        assert relay.run() == 0
        relay.clock.advance(5.0)
        assert relay.run() == 1
        assert relay.queue.delays == [5.0, 300.0]
        relay.clock.advance(299.0)
        assert relay.run() == 0
        relay.clock.advance(1.0)
        assert relay.run() == 1
        assert relay.queue.delays == [5.0, 300.0]
        assert len(relay.queue.acked) == 1
        assert relay.queue.depth() == {"visible": 0, "in_flight": 0, "dead": 0}
        deliveries = relay.hook.deliveries
        assert len(deliveries) == 3
        assert all(d.verified for d in deliveries)
        assert {d.headers["webhook-id"] for d in deliveries} == {event_id("job_1", "completed")}


def test_each_attempt_carries_a_fresh_timestamp(tmp_path: Path) -> None:
    """``webhook-timestamp`` is the attempt's time, so a retry is not refused as a replay."""
    clock = FakeClock(time.time() - 100)
    with running_hook(NEW, plan=[500]) as hook:
        deliverer = WebhookDeliverer(load_targets(Settings.from_env(env_for(hook))), clock=clock)
        try:
            first = deliverer.deliver("crm", cloud_event("job_1"))
            clock.advance(150)
            second = deliverer.deliver("crm", cloud_event("job_1"))
        finally:
            deliverer.close()
    assert (first.outcome, second.outcome) == (Outcome.FAILED, Outcome.DELIVERED)
    assert second.timestamp - first.timestamp == 150
    assert [int(d.headers["webhook-timestamp"]) for d in hook.deliveries] == [first.timestamp, second.timestamp]
    assert all(d.verified for d in hook.deliveries)


def test_a_receiver_that_always_fails_sends_the_event_to_the_dlq(tmp_path: Path) -> None:
    """After the subscriber queue's max receives the event lands in its DLQ, untouched."""
    with relay_with_hook(tmp_path, plan=[503] * 10, max_receives=3) as relay:
        event = cloud_event("job_1")
        relay.bus.publish(event)
        for _ in range(5):
            relay.run()
            relay.clock.advance(RETRY_SCHEDULE[-1])
        assert len(relay.hook.deliveries) == 3
        assert relay.queue.delays == [5.0, 300.0, 1800.0]
        [dead] = relay.queue.dead_letters()
        assert dead.body == event
        assert relay.queue.depth() == {"visible": 0, "in_flight": 0, "dead": 1}


def test_gone_is_acked_and_never_retried(tmp_path: Path) -> None:
    """410 Gone means the receiver unsubscribed: the message is acked and logged, not retried."""
    with relay_with_hook(tmp_path, plan=[410]) as relay, rendered_logs() as logs:
        relay.bus.publish(cloud_event("job_1"))
        assert relay.run() == 1
        relay.clock.advance(RETRY_SCHEDULE[-1])
        assert relay.run() == 0
        assert len(relay.hook.deliveries) == 1
        assert relay.queue.delays == []
        assert relay.queue.depth() == {"visible": 0, "in_flight": 0, "dead": 0}
    [line] = [json.loads(line) for line in logs.getvalue().splitlines() if "webhook.gone" in line]
    assert (line["target"], line["status"]) == ("crm", 410)


def test_a_timeout_is_retried(tmp_path: Path) -> None:
    """A receiver slower than the timeout counts as a failure and is tried again later."""
    with relay_with_hook(tmp_path, plan=[0.5, 0.5], timeout=0.1) as relay:
        relay.bus.publish(cloud_event("job_1"))
        result = relay.deliverer.deliver("crm", cloud_event("job_1"))
        assert (result.outcome, result.error) == (Outcome.FAILED, "timeout: ReadTimeout")
        assert relay.run() == 1
        assert relay.queue.delays == [5.0]
        relay.clock.advance(5.0)
        assert relay.run() == 1
        assert len(relay.queue.acked) == 1


def test_a_redirect_is_a_failure_and_is_not_followed(tmp_path: Path) -> None:
    """A 3xx is retried like any failure; nothing is sent to the Location."""
    with relay_with_hook(tmp_path, plan=[307]) as relay:
        relay.bus.publish(cloud_event("job_1"))
        assert relay.run() == 1
        assert relay.queue.delays == [5.0]
        assert [d.path for d in relay.hook.deliveries] == [HOOK_PATH]


def test_retry_after_lengthens_the_wait(tmp_path: Path) -> None:
    """A 429 with ``Retry-After: 120`` waits 120 s rather than the schedule's 5 s."""
    with relay_with_hook(tmp_path, plan=[(429, {"retry-after": "120"})]) as relay:
        relay.bus.publish(cloud_event("job_1"))
        relay.run()
        assert relay.queue.delays == [120.0]


def test_an_unreachable_receiver_is_a_failure() -> None:
    """A refused connection is a failure to retry, never an exception."""
    settings = Settings.from_env({"RELAY_SUBSCRIBERS": "crm:*", "RELAY_WEBHOOKS": f"crm=http://127.0.0.1:{free_port()}/",
                                  "RELAY_WEBHOOK_SECRET_CRM": NEW})
    deliverer = build_deliverer(settings)
    try:
        result = deliverer.deliver("crm", cloud_event("job_1"))
    finally:
        deliverer.close()
    assert result.outcome is Outcome.FAILED
    assert result.error is not None and result.error.startswith("ConnectError")


@pytest.mark.parametrize("event", [{"type": "x"}, {"id": "", "type": "x"}, {"id": "a.b", "type": "x"}])
def test_an_event_without_a_usable_id_is_not_sent(event: dict[str, Any]) -> None:
    """No id (or one with a '.') cannot be signed: nothing is sent and it is retried at once, to reach the DLQ."""
    with running_hook(NEW) as hook:
        deliverer = WebhookDeliverer(load_targets(Settings.from_env(env_for(hook))))
        try:
            result = deliverer.deliver("crm", event)
            assert (result.outcome, deliverer.retry_delay(result, 1)) == (Outcome.INVALID, 0.0)
        finally:
            deliverer.close()
    assert hook.deliveries == []


def test_the_worker_loop_delivers_until_stopped(tmp_path: Path) -> None:
    """``run_webhook_loop`` is what a runtime thread runs: it delivers as events arrive and stops on request."""
    with relay_with_hook(tmp_path) as relay:
        stop = threading.Event()
        thread = threading.Thread(target=run_webhook_loop, args=(relay.deliverer, "crm", relay.queue, stop),
                                  kwargs={"wait": 0.0, "pause": 0.01}, daemon=True)
        thread.start()
        relay.bus.publish(cloud_event("job_1"))
        deadline = time.monotonic() + 10
        while not relay.hook.deliveries and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        thread.join(5)
        assert not thread.is_alive()
        assert len(relay.hook.deliveries) == 1


def test_settings_tune_timeout_and_backoff() -> None:
    """``RELAY_WEBHOOK_MAX_BACKOFF`` caps the schedule for deliverers built from settings."""
    settings = Settings.from_env({"RELAY_SUBSCRIBERS": "crm:*", "RELAY_WEBHOOKS": "crm=https://crm.example/h",
                                  "RELAY_WEBHOOK_SECRET_CRM": NEW, "RELAY_WEBHOOK_MAX_BACKOFF": "60"})
    deliverer = build_deliverer(settings)
    deliverer.close()
    assert deliverer.max_backoff == 60.0


# --- secrets never reach a log ---------------------------------------------------------------------

def test_the_secret_never_appears_in_rendered_logs(tmp_path: Path) -> None:
    """Deliveries that succeed, fail, time out and hit 410, at debug level, print no secret."""
    with rendered_logs("debug") as logs:
        with relay_with_hook(tmp_path, plan=[500, 410, 0.5], timeout=0.1) as relay:
            for job in ("job_1", "job_2", "job_3", "job_4"):
                relay.bus.publish(cloud_event(job))
            relay.drain()
            get_logger("test").info("test.leak_attempt", header=f"x {NEW} {OLD}", raw=NEW[6:])
    rendered = logs.getvalue()
    assert "webhook.delivered" in rendered and "webhook.failed" in rendered and "webhook.gone" in rendered
    for secret in (NEW, OLD, NEW[6:], OLD[6:]):
        assert secret not in rendered


# --- the retry schedule (pure) ---------------------------------------------------------------------

@pytest.mark.parametrize(("receive_count", "expected"), [
    (0, 5.0), (1, 5.0), (2, 300.0), (3, 1800.0), (4, 7200.0), (5, 18000.0), (6, 36000.0), (7, 50400.0),
    (8, 72000.0), (9, 86400.0), (30, 86400.0)])
def test_the_schedule_follows_standard_webhooks(receive_count: int, expected: float) -> None:
    """5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, then daily (jitter at its midpoint, no cap)."""
    assert retry_delay(receive_count, max_backoff=float("inf"), random=lambda: 0.5) == expected


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 270.0), (0.999999, 330.0)])
def test_jitter_stays_within_ten_percent(draw: float, expected: float) -> None:
    """Jitter moves a wait by at most ±10 %."""
    assert retry_delay(2, random=lambda: draw) == pytest.approx(expected, rel=1e-5)


def test_the_wait_is_capped_by_max_backoff() -> None:
    """No wait exceeds ``max_backoff`` (3600 s by default), jitter and Retry-After included."""
    assert retry_delay(5, random=lambda: 0.99) == 3600.0
    assert retry_delay(1, retry_after=10_000.0, random=lambda: 0.5) == 3600.0
    assert retry_delay(1, retry_after=60.0, random=lambda: 0.0) == 60.0


# --- the Lambda entry point ----------------------------------------------------------------------

class FakeSsm:
    """SSM Parameter Store in memory: ``get_parameter`` with decryption, ``ParameterNotFound`` otherwise."""

    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = parameters
        self.reads: list[str] = []

    def get_parameter(self, *, Name: str, WithDecryption: bool) -> dict[str, Any]:
        self.reads.append(Name)
        if Name not in self.parameters or not WithDecryption:
            raise ClientError({"Error": {"Code": "ParameterNotFound", "Message": Name}}, "GetParameter")
        return {"Parameter": {"Name": Name, "Value": self.parameters[Name]}}


class Backoffs:
    """The subscriber queue as the handler sees it: only ``retry_later`` is used."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def retry_later(self, message: Message, delay: float) -> None:
        self.calls.append((message.id, delay))


def lambda_env(hook: Hook, **extra: str) -> dict[str, str]:
    return env_for(hook, RELAY_WEBHOOK_TARGET="crm", **extra)


def test_lambda_delivers_raw_and_sns_wrapped_records() -> None:
    """Raw-delivery bodies and SNS envelopes both arrive as the event, verified."""
    with running_hook(NEW) as hook:
        handler = build_handler(lambda_env(hook))
        events = [cloud_event("job_1"), cloud_event("job_2")]
        assert handler(sqs_event(json.dumps(events[0]))) == {"batchItemFailures": []}
        assert handler(sns_sqs_event(events[1])) == {"batchItemFailures": []}
    assert [d.event for d in hook.deliveries] == events
    assert all(d.verified for d in hook.deliveries)


def test_lambda_reports_failures_and_sets_the_backoff() -> None:
    """A failed record is a batch item failure, hidden for the schedule's delay; 410 and 2xx are not failures."""
    with running_hook(NEW, plan=[200, 500, 410]) as hook:
        backoffs = Backoffs()
        handler = build_handler(lambda_env(hook), queue=lambda: backoffs)
        event = sqs_event(*(json.dumps(cloud_event(job)) for job in ("job_1", "job_2", "job_3")))
        failed_id = event["Records"][1]["messageId"]
        assert handler(event) == {"batchItemFailures": [{"itemIdentifier": failed_id}]}
    [(message_id, delay)] = backoffs.calls
    assert message_id == failed_id
    assert 4.5 <= delay <= 5.5


def test_lambda_reports_an_unreadable_record_as_failed() -> None:
    """A body that is not a JSON object is retried, then dead-lettered by SQS."""
    with running_hook(NEW) as hook:
        handler = build_handler(lambda_env(hook))
        event = sqs_event("Test message.")
        assert handler(event) == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert hook.deliveries == []


def test_lambda_reads_the_secret_from_ssm_once() -> None:
    """``RELAY_WEBHOOK_SECRET_<NAME>_PARAM`` is read from SSM with decryption when the value is absent."""
    ssm = FakeSsm({"/relay/webhook-crm": NEW})
    with running_hook(NEW) as hook:
        env = lambda_env(hook, RELAY_WEBHOOK_SECRET_CRM="", RELAY_WEBHOOK_SECRET_CRM_PARAM="/relay/webhook-crm")
        handler = build_handler(env, ssm=ssm)
        handler(sqs_event(json.dumps(cloud_event("job_1"))))
        handler(sqs_event(json.dumps(cloud_event("job_2"))))
    assert ssm.reads == ["/relay/webhook-crm"]
    assert [d.verified for d in hook.deliveries] == [True, True]


def test_lambda_names_the_parameter_it_cannot_read() -> None:
    """An SSM failure is a ConfigurationError naming the ``_PARAM`` variable."""
    with running_hook(NEW) as hook:
        env = lambda_env(hook, RELAY_WEBHOOK_SECRET_CRM="", RELAY_WEBHOOK_SECRET_CRM_PARAM="/relay/missing")
        with pytest.raises(ConfigurationError, match="RELAY_WEBHOOK_SECRET_CRM_PARAM: cannot read SSM parameter"):
            build_handler(env, ssm=FakeSsm({}))


def test_lambda_needs_a_target() -> None:
    """Without ``RELAY_WEBHOOK_TARGET`` the function does not know where to deliver."""
    with pytest.raises(ConfigurationError, match="RELAY_WEBHOOK_TARGET is not set"):
        build_handler({"RELAY_SUBSCRIBERS": "crm:*"})


def test_lambda_handler_refuses_an_unknown_target() -> None:
    """A handler for a webhook the deliverer does not know fails at construction, not per record."""
    with running_hook(NEW) as hook:
        deliverer = WebhookDeliverer(load_targets(Settings.from_env(env_for(hook))))
        with pytest.raises(NotFound, match="no webhook target 'other'"):
            WebhookHandler(deliverer, "other")
        deliverer.close()


@pytest.mark.integration
def test_lambda_hides_a_failed_message_for_the_backoff_on_sqs(moto_server: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """On the aws backend, a failed record's visibility on its subscriber queue becomes the backoff delay."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    prefix = f"sub-{uuid.uuid4().hex[:8]}-"
    url = sqs.create_queue(QueueName=prefix + "crm", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(cloud_event("job_1")))
    [received] = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"]
    event = sqs_event(received["Body"])
    event["Records"][0].update(messageId=received["MessageId"], receiptHandle=received["ReceiptHandle"])
    with running_hook(NEW, plan=[500]) as hook:
        env = lambda_env(hook, RELAY_BACKEND="aws", RELAY_SUBSCRIBER_QUEUE_PREFIX=url.removesuffix("crm"))
        handler = build_handler(env)
        assert handler(event) == {"batchItemFailures": [{"itemIdentifier": received["MessageId"]}]}
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
