"""``seedance-relay events replay`` as a real process: a subscriber or webhook added after the events were
published catches up, in publish order, with the original ids; bad flags get one line naming the flag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers.adapters.aws.bootstrap import bootstrap
from handlers.adapters.local import SqliteEventBus
from handlers.app.settings import Settings
from handlers.app.wiring import aws_names, build_ports, subscriber_filters
from handlers.net.server import BackgroundServer
from handlers.ports import WorkQueue
from tests.support.pipeline import REQUEST, Pipeline, running_pipeline
from tests.support.servers import wait_until

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).with_name("seedance-relay"))
SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
JOBS = 3


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "events", "replay", *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120)


def drain(queue: WorkQueue) -> list[dict[str, Any]]:
    """Every message body waiting in ``queue``, in the order received (acked as read)."""
    bodies: list[dict[str, Any]] = []
    while messages := queue.receive(max_messages=10):
        for message in messages:
            bodies.append(dict(message.body))
            queue.ack(message)
    return bodies


def publish_jobs(pipeline: Pipeline, count: int = JOBS) -> list[dict[str, Any]]:
    """Run ``count`` jobs to their events; the events as the bus logged them, in publish order."""
    jobs = [pipeline.submit({**REQUEST, "prompt": f"{REQUEST['prompt']}, take {n}"}) for n in range(count)]
    for job in jobs:
        assert pipeline.wait_final(job["id"])["status"] == "published"
    return pipeline.events()


def test_a_subscriber_added_after_the_events_catches_up_in_publish_order_with_the_original_ids(
        tmp_path: Path) -> None:
    with running_pipeline(tmp_path, relay_env={"RELAY_SUBSCRIBERS": "default:*"}) as pipeline:
        published = publish_jobs(pipeline)
    env = {**pipeline.env, "RELAY_SUBSCRIBERS": "default:*,late:completed"}
    result = run_cli("--subscriber", "late", "--since", "1h", env=env)
    bus = SqliteEventBus(pipeline.data_dir / "relay.sqlite3", subscriber_filters(Settings.from_env(env)))
    try:
        received = drain(bus.subscriber("late"))
    finally:
        bus.close()
    assert result.returncode == 0, result.stderr
    assert received == published and len(received) == JOBS
    assert f"replayed {JOBS} events to subscriber 'late'" in result.stdout
    assert published[0]["id"] in result.stdout and published[-1]["id"] in result.stdout


@dataclass
class Hook:
    """A webhook receiver that checks each POST's Standard Webhooks signature."""

    deliveries: list[tuple[str, dict[str, Any], bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.body()
            try:
                Webhook(SECRET).verify(body, dict(request.headers), json_parse=False)
                verified = True
            except WebhookVerificationError:
                verified = False
            with self.lock:
                self.deliveries.append((request.headers["webhook-id"], json.loads(body), verified))
            return Response(status_code=204)

        return Starlette(routes=[Route("/hooks/crm", receive, methods=["POST"])])


@contextmanager
def running_hook() -> Iterator[Hook]:
    hook = Hook()
    server = BackgroundServer(hook.app())
    hook.url = server.start() + "/hooks/crm"
    try:
        yield hook
    finally:
        server.stop()


def test_a_webhook_added_after_the_events_receives_them_signed_in_publish_order(tmp_path: Path) -> None:
    with running_hook() as hook, running_pipeline(tmp_path, relay_env={"RELAY_SUBSCRIBERS": "default:*"}) as pipeline:
        published = publish_jobs(pipeline)
        pipeline.stop_relay()
        pipeline.env.update(RELAY_SUBSCRIBERS="default:*,crm:*", RELAY_WEBHOOKS=f"crm={hook.url}",
                            RELAY_WEBHOOK_SECRET_CRM=SECRET)
        result = run_cli("--subscriber", "crm", env=pipeline.env)
        pipeline.start_relay()
        wait_until(lambda: len(hook.deliveries) >= JOBS, 30, f"{JOBS} webhook deliveries")
    assert result.returncode == 0, result.stderr
    assert f"replayed {JOBS} events to webhook 'crm'" in result.stdout
    assert [webhook_id for webhook_id, _, _ in hook.deliveries] == [event["id"] for event in published]
    assert [body for _, body, _ in hook.deliveries] == published
    assert all(verified for _, _, verified in hook.deliveries)


@pytest.mark.integration
def test_on_aws_a_subscriber_added_after_the_events_gets_each_once_with_the_original_ids(
        moto_server: str, tmp_path: Path) -> None:
    """SQS standard queues keep no strict order, so only the ids (each once) are checked on AWS."""
    suffix = uuid.uuid4().hex[:8]
    env = {"AWS_ENDPOINT_URL": moto_server, "RELAY_BACKEND": "aws", "RELAY_DATA_DIR": str(tmp_path),
           "RELAY_TABLE": f"t-{suffix}", "RELAY_BUCKET": f"b-{suffix}", "RELAY_INGEST_QUEUE": f"i-{suffix}",
           "RELAY_REQUESTS_QUEUE": f"r-{suffix}", "RELAY_TOPIC": f"e-{suffix}",
           "RELAY_SUBSCRIBER_QUEUE_PREFIX": f"s-{suffix}-", "RELAY_SUBSCRIBERS": "default:*"}
    before = Settings.from_env(env)
    events = [_event(n) for n in range(12)]
    with _aws_bus(before) as bus:
        for event in events:
            bus.publish(event)
    env["RELAY_SUBSCRIBERS"] = "default:*,late:completed@acme"
    after = Settings.from_env(env)
    with _aws_bus(after) as bus:
        result = run_cli("--subscriber", "late", env=env)
        received = drain(bus.subscriber("late"))
    wanted = [e for e in events if e["type"].endswith(".completed") and e["tenant"] == "acme"]
    assert result.returncode == 0, result.stderr
    assert sorted(m["id"] for m in received) == sorted(e["id"] for e in wanted) and len(wanted) == 4
    assert {m["id"]: m for m in received} == {e["id"]: e for e in wanted}


def _event(n: int) -> dict[str, Any]:
    outcome = "completed" if n % 2 else "failed"
    return {"specversion": "1.0", "id": f"evt-{n:02d}", "source": "urn:seedance-relay",
            "type": f"io.seedance-relay.job.{outcome}", "subject": f"job-{n}", "tenant": "acme" if n % 3 else "beta",
            "datacontenttype": "application/json", "data": {"job_id": f"job-{n}"}}


@contextmanager
def _aws_bus(settings: Settings) -> Iterator[Any]:
    """The AWS resources for ``settings`` (its subscribers' queues made and subscribed), and its bus."""
    from handlers.adapters.aws import aws_clients

    names = aws_names(settings)
    bootstrap(aws_clients(names, endpoint_url=settings.aws_endpoint_url), names, subscriber_filters(settings))
    _, _, _, bus, closers = build_ports(settings)
    try:
        yield bus
    finally:
        for close in closers:
            close()


@pytest.fixture
def local_events(tmp_path: Path) -> dict[str, str]:
    """A local relay folder whose bus published two events before subscriber ``late`` was added; the
    environment that names both."""
    env = {"RELAY_DATA_DIR": str(tmp_path), "RELAY_SUBSCRIBERS": "default:*,late:completed@acme"}
    bus = SqliteEventBus(tmp_path / "relay.sqlite3", {"default": ["*"]})
    try:
        bus.publish(_event(1))
        bus.publish(_event(2))
    finally:
        bus.close()
    return env


@pytest.mark.parametrize(("args", "says"), [
    (("--subscriber", "nobody"), ("--subscriber", "no subscriber 'nobody'", "default, late", "RELAY_SUBSCRIBERS")),
    (("--subscriber", "late", "--since", "yesterday"), ("--since", "'yesterday'", "RFC 3339", "2h")),
    (("--subscriber", "late", "--since", "2026-05-01T12:00:00"), ("--since", "offset")),
    (("--subscriber", "late", "--since", "2999-01-01T00:00:00Z"), ("--since", "nothing to replay")),
    (("--subscriber", "late", "--type", "failed"), ("--type", "does not receive 'failed'", "completed")),
    (("--subscriber", "late", "--type", "finished"), ("--type", "unknown event type 'finished'", "cancelled")),
    (("--subscriber", "late", "--tenant", "beta"), ("--tenant", "tenant 'beta'", "tenant:acme")),
    (("--since", "2h"), ("Missing option '--subscriber'",)),
], ids=["unknown subscriber", "since not a time", "since without offset", "since in the future",
        "type not subscribed", "type unknown", "tenant not subscribed", "no subscriber"])
def test_bad_flags_get_one_line_naming_the_flag_and_send_nothing(
        local_events: dict[str, str], args: tuple[str, ...], says: tuple[str, ...]) -> None:
    result = run_cli(*args, env=local_events)
    bus = SqliteEventBus(Path(local_events["RELAY_DATA_DIR"]) / "relay.sqlite3",
                         subscriber_filters(Settings.from_env(local_events)))
    try:
        sent = drain(bus.subscriber("late"))
    finally:
        bus.close()
    assert result.returncode == 2, result.stderr
    assert all(text in result.stderr for text in says), result.stderr
    assert "Traceback" not in result.stderr and sent == []


def test_a_folder_without_relay_data_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = run_cli("--subscriber", "default", env={"RELAY_DATA_DIR": str(tmp_path / "none")})
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: no relay data at {tmp_path / 'none'} (run `seedance-relay serve` first)"
