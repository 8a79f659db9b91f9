"""The use cases on local adapters with a fake provider and a real media server."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from handlers.app.relay import Relay
from handlers.app.runtime import run_worker_once
from handlers.base.errors import ProviderRejected, ProviderUnavailable, QueueError
from handlers.domain.jobs import JobStatus, Outcome
from handlers.provider.evolink.task import new_task_id
from handlers.usecases import accept_callback, ingest, reconcile, submit
from handlers.usecases.ingest import MAX_OTHER_TASKS, late_callback_key
from handlers.usecases.outcomes import record_outcome
from tests.functional.conftest import VIDEO
from tests.support.fakes import Clock, FakeProvider, local_relay
from tests.support.faults import QueueWrapper
from tests.support.media_server import MediaServer

REQUEST = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4}


@pytest.fixture
def relay(tmp_path: Path, provider: FakeProvider, media: MediaServer, clock: Clock) -> Iterator[Relay]:
    relay = local_relay(tmp_path, provider, clock, EVOLINK_BASE_URL=media.url(""), RELAY_EXPIRE_AFTER="3600",
                        RELAY_RECONCILE_GRACE="30", RELAY_RECONCILE_EVERY="60")
    yield relay
    relay.close()


def drain(relay: Relay) -> int:
    total = 0
    while count := run_worker_once(relay, relay.ingest_queue, worker="test", wait=0):
        total += count
    return total


def callback(relay: Relay, job_id: str, task_id: str | None) -> None:
    accept_callback(relay, job_id, relay.signer.sign(job_id), f'{{"id": "{task_id}"}}'.encode())


def test_a_completed_task_is_copied_with_checksum_manifest_and_one_event(relay: Relay, provider: FakeProvider) -> None:
    job = submit(relay, REQUEST, metadata={"k": "v"})
    provider.finish(job.task_id or "")
    callback(relay, job.id, job.task_id)
    drain(relay)
    stored = relay.jobs.get(job.id)
    [output] = stored.outputs
    assert stored.status is JobStatus.PUBLISHED and output.size == len(VIDEO)
    assert relay.blobs.head(f"jobs/{job.id}/manifest.json") is not None
    assert [e["type"] for _, e in relay.bus.events()] == ["io.seedance-relay.job.completed"]  # type: ignore[attr-defined]


def test_callback_urls_carry_the_job_and_a_verifiable_token(relay: Relay, provider: FakeProvider) -> None:
    job = submit(relay, REQUEST)
    url = provider.creates[0]["callback_url"]
    token = url.split("token=")[1]
    assert f"/v1/callbacks/evolink/{job.id}?" in url and relay.signer.verify(job.id, token)


def test_a_lost_create_response_waits_for_the_callback_that_names_the_task(
        relay: Relay, provider: FakeProvider) -> None:
    provider.lose_response = True
    job = submit(relay, REQUEST)
    assert job.status is JobStatus.SUBMITTED and job.unknown_outcome and job.task_id is None
    task_id = provider.only_task()
    provider.finish(task_id)
    callback(relay, job.id, task_id)
    drain(relay)
    final = relay.jobs.get(job.id)
    assert final.status is JobStatus.PUBLISHED and final.task_id == task_id and len(provider.creates) == 1


def test_a_lost_create_that_never_calls_back_expires_with_an_event(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    provider.lose_response = True
    job = submit(relay, REQUEST)
    clock.advance(3601)
    assert reconcile(relay) == {"expired": 1}
    final = relay.jobs.get(job.id)
    assert final.status is JobStatus.EXPIRED and len(provider.creates) == 1
    assert [e["type"] for _, e in relay.bus.events()] == ["io.seedance-relay.job.expired"]  # type: ignore[attr-defined]


def test_a_rejected_create_is_a_rejected_job_with_an_event(relay: Relay, provider: FakeProvider) -> None:
    provider.create_error = ProviderRejected("EvoLink 400", status=400, code="invalid_parameters")
    job = submit(relay, REQUEST)
    assert job.status is JobStatus.REJECTED and job.error and job.error["provider_code"] == "invalid_parameters"
    assert job.event_ids and job.check_at is None


def test_an_account_out_of_credits_fails_the_job_at_once_and_releases_its_hold(
        relay: Relay, provider: FakeProvider) -> None:
    """402 insufficient_quota is the account's fault, not the request's: failed (not rejected), no retry, the
    budget hold settled to nothing."""
    provider.create_error = ProviderRejected("EvoLink 402", status=402, code="insufficient_quota")
    job = submit(relay, REQUEST)
    assert job.status is JobStatus.FAILED and job.error and job.error["provider_code"] == "insufficient_quota"
    assert job.event_ids and job.check_at is None and len(provider.creates) == 1
    assert job.hold_period is not None
    usage = relay.ledger.usage(job.tenant, job.hold_period)
    assert (usage.held, usage.spent) == (0.0, 0.0)


def test_an_unavailable_provider_leaves_the_job_accepted_and_the_reconciler_resubmits(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    provider.create_error = ProviderUnavailable("EvoLink 503", status=503, code="service_unavailable")
    job = submit(relay, REQUEST)
    assert job.status is JobStatus.ACCEPTED and job.error and job.submit_claimed_at is None
    provider.create_error = None
    clock.advance(31)
    assert reconcile(relay) == {"resubmitted": 1}
    assert relay.jobs.get(job.id).status is JobStatus.SUBMITTED and len(provider.creates) == 2


def test_a_submitter_that_died_mid_call_is_never_followed_by_a_blind_resubmit(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    job = submit(relay, REQUEST)
    stuck = relay.jobs.update(dataclasses.replace(relay.jobs.get(job.id), status=JobStatus.ACCEPTED, task_id=None,
                                                  submit_claimed_at=clock(), check_at=clock()))
    clock.advance(400)
    reconcile(relay)
    after = relay.jobs.get(stuck.id)
    assert after.unknown_outcome and after.status is JobStatus.SUBMITTED and len(provider.creates) == 1


def test_the_reconciler_reads_jobs_whose_callback_never_came(relay: Relay, provider: FakeProvider,
                                                             clock: Clock) -> None:
    job = submit(relay, REQUEST)
    provider.finish(job.task_id or "")
    clock.advance(60 + 29)
    assert reconcile(relay) == {}
    clock.advance(2)
    assert reconcile(relay) == {"enqueued": 1}
    drain(relay)
    assert relay.jobs.get(job.id).status is JobStatus.PUBLISHED


class FailFirstSend(QueueWrapper):
    """The ingest queue, whose first send fails (a queue that is down for a moment)."""

    failed = False

    def send(self, body: Mapping[str, Any], *, delay: float = 0.0) -> str:
        if not self.failed:
            self.failed = True
            raise QueueError("injected: the queue is down")
        return self.inner.send(body, delay=delay)


def test_a_job_the_reconciler_cannot_hand_on_does_not_stop_the_pass(relay: Relay, provider: FakeProvider,
                                                                      clock: Clock) -> None:
    """One failed queue send leaves that job due for the next pass; the jobs after it are still handed on."""
    jobs = [submit(relay, {**REQUEST, "prompt": f"{REQUEST['prompt']} {n}"}) for n in range(3)]
    for job in jobs:
        provider.finish(job.task_id or "")
    clock.advance(60 + 31)
    relay.ingest_queue = FailFirstSend(relay.ingest_queue)
    assert reconcile(relay) == {"failed": 1, "enqueued": 2}
    drain(relay)
    assert sorted(relay.jobs.get(job.id).status.value for job in jobs) == ["published", "published", "submitted"]
    clock.advance(relay.settings.reconcile_every + 1)
    assert reconcile(relay) == {"enqueued": 1}
    drain(relay)
    assert {relay.jobs.get(job.id).status for job in jobs} == {JobStatus.PUBLISHED}


def test_an_expired_result_url_fails_the_job_once_without_a_retry_loop(
        relay: Relay, provider: FakeProvider, media: MediaServer) -> None:
    provider.results = [media.add("/gone.mp4", b"AccessDenied", status=403, content_type="text/plain")]
    job = submit(relay, REQUEST)
    provider.finish(job.task_id or "")
    callback(relay, job.id, job.task_id)
    drain(relay)
    final = relay.jobs.get(job.id)
    assert final.status is JobStatus.FAILED and final.error and final.error["code"] == "result_expired"
    assert relay.ingest_queue.depth() == {"visible": 0, "in_flight": 0, "dead": 0}


def test_a_result_on_a_private_address_is_never_fetched(tmp_path: Path, media: MediaServer) -> None:
    with MediaServer() as attacker:
        provider = FakeProvider(results=[attacker.add("/x.mp4", VIDEO, content_type="video/mp4")])
        relay = local_relay(tmp_path, provider, EVOLINK_BASE_URL=media.url(""))
        try:
            job = submit(relay, REQUEST)
            provider.finish(job.task_id or "")
            callback(relay, job.id, job.task_id)
            drain(relay)
            final = relay.jobs.get(job.id)
        finally:
            relay.close()
        assert attacker.requests == []
    assert final.status is JobStatus.FAILED and final.error and final.error["code"] == "unsafe_result_url"


def test_a_transient_download_error_is_retried_until_it_works(relay: Relay, provider: FakeProvider,
                                                              media: MediaServer, clock: Clock) -> None:
    provider.results = [media.add("/flaky.mp4", b"", status=503)]
    job = submit(relay, REQUEST)
    provider.finish(job.task_id or "")
    callback(relay, job.id, job.task_id)
    drain(relay)
    assert relay.jobs.get(job.id).outcome is None and relay.ingest_queue.depth()["in_flight"] == 1
    media.add("/flaky.mp4", VIDEO, content_type="video/mp4")
    clock.advance(5)
    drain(relay)
    assert relay.jobs.get(job.id).status is JobStatus.PUBLISHED


@pytest.mark.parametrize(("status", "error", "job_status", "code"), [
    ("failed", {"code": "generation_timeout", "message": "timed out"}, JobStatus.FAILED, "generation_timeout"),
    ("failed", None, JobStatus.FAILED, "unknown_error"),
    ("completed", None, JobStatus.FAILED, "no_results"),
])
def test_provider_outcomes_map_to_terminal_jobs(relay: Relay, provider: FakeProvider, status: str,
                                                error: dict[str, str] | None, job_status: JobStatus, code: str) -> None:
    if code == "no_results":
        provider.results = []
    relay.settings = relay.settings.with_(max_attempts=1)  # one task: no retry of a code that says try again
    job = submit(relay, REQUEST)
    provider.finish(job.task_id or "", status, error)
    callback(relay, job.id, job.task_id)
    drain(relay)
    final = relay.jobs.get(job.id)
    assert final.status is job_status and final.error and final.error["code"] == code


def test_a_task_the_provider_no_longer_knows_fails_the_job(relay: Relay, provider: FakeProvider) -> None:
    job = submit(relay, REQUEST)
    provider.tasks.clear()
    callback(relay, job.id, job.task_id)
    drain(relay)
    final = relay.jobs.get(job.id)
    assert final.status is JobStatus.FAILED and final.error and final.error["code"] == "task_not_found"


def test_concurrent_ingests_of_one_job_store_one_copy_and_publish_one_event(
        relay: Relay, provider: FakeProvider, media: MediaServer) -> None:
    job = submit(relay, REQUEST)
    provider.finish(job.task_id or "")
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def race(index: int) -> None:
        barrier.wait()
        try:
            ingest(relay, job.id, worker=f"w{index}")
            outcomes.append("ok")
        except Exception as exc:  # noqa: BLE001 - the test records which errors the race produced
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ingest(relay, job.id, worker="late")  # whoever lost the race comes back later
    downloads = [r for r in media.requests if r.path == "/video.mp4"]
    assert set(outcomes) <= {"ok", "Busy"} and len(downloads) == 1
    assert len(relay.bus.events()) == 1  # type: ignore[attr-defined]
    assert relay.jobs.get(job.id).status is JobStatus.PUBLISHED


def replay_with_new_task_ids(relay: Relay, job_id: str, times: int, clock: Clock) -> list[str]:
    """``times`` callbacks with the job's valid token, each naming a task id never seen before."""
    task_ids = [new_task_id(clock()) for _ in range(times)]
    for task_id in task_ids:
        callback(relay, job_id, task_id)
        clock.advance(1)
    drain(relay)
    return task_ids


def test_callbacks_naming_other_tasks_record_at_most_ten_while_the_job_runs(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    job = submit(relay, REQUEST)
    task_ids = replay_with_new_task_ids(relay, job.id, 150, clock)
    after = relay.jobs.get(job.id)
    assert after.other_tasks == tuple(task_ids[:MAX_OTHER_TASKS])
    assert after.status is JobStatus.SUBMITTED and provider.reads == []


def test_callbacks_after_the_job_ended_note_only_the_first_and_do_no_work(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    job = submit(relay, REQUEST)
    provider.finish(job.task_id or "")
    callback(relay, job.id, job.task_id)
    drain(relay)
    ended = relay.jobs.get(job.id)
    reads = len(provider.reads)
    first_at = clock()
    task_ids = replay_with_new_task_ids(relay, job.id, 150, clock)
    after = relay.jobs.get(job.id)
    [note] = [json.loads(b"".join(relay.blobs.read(late_callback_key(job.id))))]
    assert (after.version, after.other_tasks) == (ended.version, ())
    assert note == {"job_id": job.id, "status": "published", "task_id": task_ids[0], "received_at": first_at,
                    "outcome": "completed"}
    assert len(provider.reads) == reads and len(relay.bus.events()) == 1  # type: ignore[attr-defined]


def test_an_outcome_recorded_before_the_ingest_is_published_and_the_result_is_not_copied(
        relay: Relay, provider: FakeProvider, media: MediaServer) -> None:
    """A worker stopped between recording an outcome and publishing it: the next ingest only publishes."""
    job = submit(relay, REQUEST)
    provider.finish(job.task_id or "")
    record_outcome(relay, job, Outcome.EXPIRED, {"code": "expired", "message": "no final answer in time"})
    final = ingest(relay, job.id, task_hint=job.task_id, worker="w1")
    assert final.status is JobStatus.EXPIRED and final.outputs == () and provider.reads == []
    assert not [r for r in media.requests if r.path == "/video.mp4"]
    assert [e["type"] for _, e in relay.bus.events()] == ["io.seedance-relay.job.expired"]  # type: ignore[attr-defined]


def test_an_ingest_after_the_event_went_out_changes_nothing(relay: Relay, provider: FakeProvider) -> None:
    job = submit(relay, REQUEST)
    provider.finish(job.task_id or "")
    published = ingest(relay, job.id, worker="w1")
    assert ingest(relay, job.id, worker="w2") == published and len(relay.bus.events()) == 1  # type: ignore[attr-defined]
