"""Jobs that name outputs of earlier jobs (``job://``): checked at submit, waiting until published, woken by the
event, failed with ``dependency_failed``; on local adapters with a fake provider and a real media server."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from handlers.app.relay import Relay
from handlers.base.errors import InvalidRequest
from handlers.domain.jobs import Job, JobStatus
from handlers.domain.pricing import estimate
from handlers.usecases import accept_callback, reconcile, submit
from handlers.usecases.estimate import Estimator, estimate_for_tenant
from handlers.usecases.references import check_job_file_url
from tests.support.fakes import Clock, FakeProvider, drain, local_relay
from tests.support.media_server import MediaServer

T2V = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse in a storm", "duration": 4, "quality": "480p"}


def extend(job_id: str, *, prompt: str = "continue @video1", **extra: Any) -> dict[str, Any]:
    return {"model": "seedance-2.0-reference-to-video", "prompt": prompt, "duration": 5, "quality": "480p",
            "video_urls": [f"job://{job_id}/output-0"], **extra}


@pytest.fixture
def relay(tmp_path: Path, provider: FakeProvider, media: MediaServer, clock: Clock) -> Iterator[Relay]:
    relay = local_relay(tmp_path, provider, clock, EVOLINK_BASE_URL=media.url(""), RELAY_EXPIRE_AFTER="3600",
                        RELAY_RECONCILE_GRACE="30", RELAY_RECONCILE_EVERY="60")
    yield relay
    relay.close()


def finish(relay: Relay, provider: FakeProvider, job: Job, status: str = "completed",
           error: dict[str, Any] | None = None) -> Job:
    provider.finish(job.task_id or "", status, error)
    accept_callback(relay, job.id, relay.signer.sign(job.id), f'{{"id": "{job.task_id}"}}'.encode())
    drain(relay)
    return relay.jobs.get(job.id)


def violations(exc: pytest.ExceptionInfo[InvalidRequest]) -> list[tuple[str, str]]:
    return [(v.field, v.code) for v in exc.value.violations]


def test_a_published_output_is_sent_to_the_provider_as_a_signed_url_of_its_file(
        relay: Relay, provider: FakeProvider) -> None:
    first = finish(relay, provider, submit(relay, T2V))
    second = submit(relay, extend(first.id))
    assert second.status is JobStatus.SUBMITTED
    url = urlsplit(provider.creates[-1]["video_urls"][0])
    query = parse_qs(url.query)
    name = url.path.removeprefix("/v1/job-files/")
    assert check_job_file_url(relay, name, query["expires"][0], query["sig"][0]) == first.outputs[0].key
    assert second.request["video_urls"] == [f"job://{first.id}/output-0"]  # the job keeps the reference itself


def test_a_reference_to_a_job_that_does_not_exist_is_refused_naming_the_field(relay: Relay) -> None:
    with pytest.raises(InvalidRequest, match="job_0123456789abcdef0123456789, which does not exist") as exc:
        submit(relay, extend("job_0123456789abcdef0123456789"))
    assert violations(exc) == [("video_urls[0]", "unknown_reference")]


def test_another_tenants_job_answers_exactly_like_a_missing_one(relay: Relay, provider: FakeProvider) -> None:
    theirs = finish(relay, provider, submit(relay, T2V, tenant="other"))
    with pytest.raises(InvalidRequest) as exc:
        submit(relay, extend(theirs.id), tenant="default")
    assert violations(exc) == [("video_urls[0]", "unknown_reference")]
    assert exc.value.violations[0].message == (
        f"video_urls[0] names job {theirs.id}, which does not exist (jobs of your tenant only)")


def test_a_reference_to_a_failed_job_is_refused(relay: Relay, provider: FakeProvider) -> None:
    failed = finish(relay, provider, submit(relay, T2V), "failed", {"code": "content_policy_violation"})
    with pytest.raises(InvalidRequest, match=r"ended failed \(content_policy_violation\)") as exc:
        submit(relay, extend(failed.id))
    assert violations(exc) == [("video_urls[0]", "reference_failed")]


def test_a_picture_part_in_video_urls_is_refused_before_any_lookup(relay: Relay) -> None:
    with pytest.raises(InvalidRequest, match="names poster, which is not a video") as exc:
        submit(relay, {**extend("job_0123456789abcdef0123456789"),
                       "video_urls": ["job://job_0123456789abcdef0123456789/poster"]})
    assert violations(exc) == [("video_urls[0]", "invalid_reference")]


def test_referenced_outputs_count_toward_the_15_second_total(relay: Relay, provider: FakeProvider) -> None:
    long = submit(relay, {**T2V, "duration": 12})
    short = submit(relay, {**T2V, "duration": 5, "prompt": "another"})
    request = extend(long.id, video_urls=[f"job://{long.id}/output-0", f"job://{short.id}/output-0"])
    with pytest.raises(InvalidRequest, match=r"last 17 s in total \(17 s of them from earlier jobs. outputs\)") as exc:
        submit(relay, request)
    assert violations(exc) == [("video_urls", "total_duration_exceeded")]


def test_the_estimate_counts_a_referenced_video_at_its_own_length_not_the_worst_case(
        relay: Relay, provider: FakeProvider) -> None:
    first = submit(relay, T2V)
    second = submit(relay, extend(first.id))
    assert second.credits_estimated == estimate(second.request, [4.0], relay.prices).credits
    assert second.credits_estimated < estimate(second.request, [None], relay.prices).credits


def test_a_job_naming_an_unpublished_output_waits_and_is_sent_once_it_is_published(
        relay: Relay, provider: FakeProvider) -> None:
    first = submit(relay, T2V)
    second = submit(relay, extend(first.id))
    assert second.status is JobStatus.WAITING and second.depends_on == (first.id,)
    assert relay.jobs.get(first.id).dependents == (second.id,)
    assert len(provider.creates) == 1
    finish(relay, provider, first)
    woken = relay.jobs.get(second.id)
    assert woken.status is JobStatus.SUBMITTED and len(provider.creates) == 2
    assert provider.creates[-1]["video_urls"][0].startswith(f"{relay.callback_base}/v1/job-files/")


def test_a_waiting_job_fails_with_dependency_failed_naming_the_job_that_failed(
        relay: Relay, provider: FakeProvider) -> None:
    first = submit(relay, T2V)
    second = submit(relay, extend(first.id))
    third = submit(relay, extend(second.id, prompt="and again @video1"))
    finish(relay, provider, first, "failed", {"code": "content_policy_violation"})
    failed = relay.jobs.get(second.id)
    assert failed.status is JobStatus.FAILED and failed.error is not None
    assert failed.error["code"] == "dependency_failed" and failed.error["dependency"] == first.id
    assert "content_policy_violation" in failed.error["message"]
    chained = relay.jobs.get(third.id)  # the failure runs down the chain
    assert chained.status is JobStatus.FAILED and chained.error is not None
    assert chained.error["dependency"] == second.id
    assert len(provider.creates) == 1


def test_the_reconciler_wakes_a_waiting_job_whose_wake_up_was_missed(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    first = submit(relay, T2V)
    second = submit(relay, extend(first.id))
    stored = relay.jobs.get(first.id)
    relay.jobs.update(dataclasses.replace(stored, dependents=()))  # as if the note had been lost
    finish(relay, provider, first)
    assert relay.jobs.get(second.id).status is JobStatus.WAITING
    clock.advance(31)
    assert reconcile(relay).get("ready") == 1
    drain(relay)
    assert relay.jobs.get(second.id).status is JobStatus.SUBMITTED


def test_the_reconciler_leaves_a_job_waiting_while_its_dependency_runs(
        relay: Relay, provider: FakeProvider, clock: Clock) -> None:
    first = submit(relay, T2V)
    second = submit(relay, extend(first.id))
    clock.advance(31)
    counts = reconcile(relay)
    assert counts.get("waiting") == 1
    again = relay.jobs.get(second.id)
    assert again.status is JobStatus.WAITING and again.check_at == clock.now() + 60


def test_a_last_frame_reference_sends_the_stored_picture_beside_the_video(relay: Relay, provider: FakeProvider) -> None:
    first = finish(relay, provider, submit(relay, T2V))
    request = {"model": "seedance-2.0-image-to-video", "prompt": "go on from here", "duration": 4,
               "quality": "480p", "image_urls": [f"job://{first.id}/last-frame"]}
    second = submit(relay, request)
    assert second.status is JobStatus.SUBMITTED
    url = urlsplit(provider.creates[-1]["image_urls"][0])
    query = parse_qs(url.query)
    key = check_job_file_url(relay, url.path.removeprefix("/v1/job-files/"), query["expires"][0], query["sig"][0])
    assert key == first.outputs[0].frame_key("last-frame")
    assert b"".join(relay.blobs.read(key))[:3] == b"\xff\xd8\xff"  # a JPEG


def test_an_estimate_for_a_tenant_counts_its_referenced_output_at_its_length(
        relay: Relay, provider: FakeProvider) -> None:
    first = submit(relay, T2V)
    request = extend(first.id)
    assert estimate_for_tenant(relay, Estimator(relay.prices), "default", request).credits == \
        estimate(request, [4.0], relay.prices).credits
    with pytest.raises(InvalidRequest, match="does not exist"):
        estimate_for_tenant(relay, Estimator(relay.prices), "other", request)
