"""Deadlines and results at risk, on both backends, with the relay's clock in the test's hand.

The relay runs in-process on an injected :class:`~tests.support.fakes.Clock` against the sandbox over real
sockets (through a fault proxy that can refuse result downloads); its reconciler and ingest are called
directly, so hours pass in an instant:

* ``cancel_after``: past the deadline the reconciler cancels the job, running or queued (reason ``deadline``);
* a completed task whose result cannot be copied publishes ``job.at_risk`` once ``RELAY_AT_RISK_AFTER``
  after the relay first read it completed, and fails with ``result_expired`` once its URLs expire (24 h).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from handlers.app.relay import Relay
from handlers.app.settings import Settings
from handlers.app.wiring import build_relay
from handlers.base.errors import DownloadFailed
from handlers.domain.events import event_id
from handlers.domain.jobs import Job, JobStatus, rfc3339
from handlers.usecases import ingest, reconcile, submit
from handlers.usecases.risk import RESULT_URL_TTL
from tests.support.fakes import Clock
from tests.support.faults import Faults, fault_proxy
from tests.support.servers import running_sandbox, wait_until
from tests.support.tenants import REQUEST, aws_names, bootstrap_aws

pytestmark = pytest.mark.e2e
AT_RISK_AFTER = 20 * 3600.0


@pytest.fixture(params=["local", pytest.param("aws", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def moto(backend: str, request: pytest.FixtureRequest) -> str | None:
    return str(request.getfixturevalue("moto_server")) if backend == "aws" else None


@dataclass
class Clocked:
    relay: Relay
    clock: Clock
    downloads: Faults

    def events(self) -> list[dict[str, Any]]:
        queue, bodies = self.relay.bus.subscriber("audit"), []
        while messages := queue.receive(max_messages=10):
            bodies += [dict(m.body) for m in messages]
            for message in messages:
                queue.ack(message)
        return bodies

    def completed_at_the_sandbox(self, job: Job) -> None:
        wait_until(lambda: self.relay.provider.get_task(job.task_id or "").status == "completed", 30,
                   "the task to complete")


@contextmanager
def clocked(backend: str, tmp: Path, moto: str | None, **env: str) -> Iterator[Clocked]:
    """The relay on ``backend`` at a clock that moves only when told; the sandbox sends no callbacks."""
    downloads = Faults(applies=lambda request: request.url.path.startswith("/files/"))
    with ExitStack() as stack:
        speed = float(env.pop("speed", "400"))
        box = stack.enter_context(running_sandbox(tmp / "sandbox", speed=speed, callback_drop=1.0))
        settings_env = {"RELAY_DATA_DIR": str(tmp / "relay"), "EVOLINK_BASE_URL": stack.enter_context(
            fault_proxy(box.url, downloads)), "RELAY_CALLBACK_SECRET": "k1:" + "d" * 32, "RELAY_API_KEYS": "key-1",
            "RELAY_SUBSCRIBERS": "audit:*", "RELAY_RECONCILE_EVERY": "60", "RELAY_RECONCILE_GRACE": "300",
            "RELAY_AT_RISK_AFTER": str(AT_RISK_AFTER), **env}
        if backend == "aws":
            assert moto is not None
            settings_env.update(aws_names(moto))
            bootstrap_aws(settings_env)
        clock = Clock()
        relay = build_relay(Settings.from_env(settings_env), clock=clock)
        stack.callback(relay.close)
        yield Clocked(relay, clock, downloads)


def test_past_its_deadline_a_running_job_is_cancelled_by_the_reconciler(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    with clocked(backend, tmp_path, moto, speed="1") as run:
        job = submit(run.relay, REQUEST, cancel_after=120)
        assert job.status is JobStatus.SUBMITTED and job.check_at == job.deadline_at == run.clock() + 120
        run.clock.advance(119)
        assert reconcile(run.relay) == {}
        run.clock.advance(1)
        assert reconcile(run.relay) == {"deadline": 1}
        final, [event] = run.relay.jobs.get(job.id), run.events()
    assert final.status is JobStatus.CANCELLED and final.error and final.error["reason"] == "deadline"
    assert final.error["abandoned_task_id"] == job.task_id and event["type"] == "io.seedance-relay.job.cancelled"


def test_past_its_deadline_a_queued_job_is_cancelled_the_same_way(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    with clocked(backend, tmp_path, moto, speed="1", RELAY_MAX_IN_FLIGHT="1") as run:
        running = submit(run.relay, {**REQUEST, "prompt": "the first"})
        queued = submit(run.relay, {**REQUEST, "prompt": "the second"}, cancel_after=30)
        assert queued.status is JobStatus.QUEUED and queued.check_at == queued.deadline_at
        run.clock.advance(30)
        counts = reconcile(run.relay)
        final, events = run.relay.jobs.get(queued.id), run.events()
    assert counts["deadline"] == 1 and final.status is JobStatus.CANCELLED and final.task_id is None
    assert [(e["subject"], e["data"]["error"]["reason"]) for e in events] == [(queued.id, "deadline")]
    assert run.relay.jobs.get(running.id).status is JobStatus.SUBMITTED


def uncopyable(run: Clocked) -> Job:
    """A job whose task completed at the sandbox but whose result the relay cannot download (503s)."""
    run.downloads.error_rate = 1.0
    job = submit(run.relay, REQUEST)
    run.completed_at_the_sandbox(job)
    with pytest.raises(DownloadFailed):
        ingest(run.relay, job.id, worker="test")
    seen = run.relay.jobs.get(job.id)
    assert seen.result_seen_at == run.clock() and seen.outcome is None
    return seen


def test_a_result_not_copied_in_time_publishes_at_risk_once_then_fails_with_result_expired(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    with clocked(backend, tmp_path, moto) as run:
        job = uncopyable(run)
        run.clock.advance(AT_RISK_AFTER - 1)
        assert reconcile(run.relay) == {"enqueued": 1}
        run.clock.advance(1)
        assert reconcile(run.relay) == {"at_risk": 1}
        [warning] = run.events()
        run.clock.advance(600)
        assert reconcile(run.relay) == {"enqueued": 1}
        assert run.events() == []
        run.clock.advance((job.result_seen_at or 0) + RESULT_URL_TTL - run.clock())
        assert reconcile(run.relay) == {"result_expired": 1}
        final, [failed] = run.relay.jobs.get(job.id), run.events()
        figures = run.relay.metrics.exposition().decode()
    assert warning["type"] == "io.seedance-relay.job.at_risk" and warning["id"] == event_id(job.id, "at_risk")
    assert warning["data"]["expires_at"] == rfc3339((job.result_seen_at or 0) + RESULT_URL_TTL)
    assert final.status is JobStatus.FAILED and final.error and final.error["code"] == "result_expired"
    assert final.at_risk_at == (job.result_seen_at or 0) + AT_RISK_AFTER
    assert failed["type"] == "io.seedance-relay.job.failed" and failed["data"]["error"]["code"] == "result_expired"
    assert "relay_jobs_at_risk_total 1.0" in figures and "relay_results_expired_total 1.0" in figures


def test_a_result_at_risk_that_is_copied_in_the_end_is_published(
        backend: str, moto: str | None, tmp_path: Path) -> None:
    with clocked(backend, tmp_path, moto) as run:
        job = uncopyable(run)
        run.clock.advance(AT_RISK_AFTER)
        assert reconcile(run.relay) == {"at_risk": 1}
        run.downloads.error_rate = 0.0
        final = ingest(run.relay, job.id, worker="test")
        events = run.events()
    assert final.status is JobStatus.PUBLISHED and final.outputs and final.public()["at_risk_at"] is not None
    assert [e["type"].rsplit(".", 1)[1] for e in events] == ["at_risk", "completed"]
