"""The sandbox bills by the price table and enforces an account's credits and a plan's concurrency, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.app.settings import Settings
from handlers.app.wiring import build_relay
from handlers.base.errors import ProviderRejected, ProviderUnavailable
from handlers.domain.jobs import JobStatus
from handlers.domain.pricing import DEFAULT_PRICE_TABLE, PriceTable, Rate, estimate
from handlers.provider.evolink import EvoLinkClient, RetryPolicy
from handlers.sandbox.media import render_video
from handlers.usecases.estimate import Estimator, estimate_job
from handlers.usecases.submit import submit
from tests.support.media_server import MediaServer
from tests.support.servers import running_sandbox, wait_until

KEY = {"Authorization": "Bearer sk-evo-test-key"}
SEED = {"model": "seedance-2.0-reference-to-video", "prompt": "@image1 at dusk",
        "image_urls": ["https://example.com/a.png"], "duration": 10, "quality": "720p"}
QUICK = 400.0  # a 10 s 720p task (180 s nominal) finishes in about half a second
SLOW = 40.0  # ... in about 4.5 s
RATES = DEFAULT_PRICE_TABLE.rates


def create(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/videos/generations", json=body, headers=KEY)


def final(client: httpx.Client, task_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        task: dict[str, Any] = client.get(f"/v1/tasks/{task_id}", headers=KEY).json()
        return task if task["status"] in ("completed", "failed", "cancelled") else None

    result: dict[str, Any] = wait_until(done, 20.0, f"task {task_id} to end")
    return result


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[httpx.Client]:
    with running_sandbox(tmp_path, speed=QUICK) as running, httpx.Client(base_url=running.url) as client:
        yield client


# --- what a task reserves and uses ---------------------------------------------------------------


@pytest.mark.parametrize(("changes", "credits"), [
    ({}, 60.0),  # the seed's worked example
    ({"duration": 4, "quality": "480p", "model": "seedance-2.0-fast-reference-to-video"},
     4 * RATES["fast"]["480p"].credits),
    ({"model": "seedance-2.0-mini-reference-to-video"}, 10 * RATES["mini"]["720p"].credits),
    ({"content_filter": False}, 66.0),
])
def test_a_task_reserves_what_the_price_table_says(sandbox: httpx.Client, changes: dict[str, Any],
                                                   credits: float) -> None:
    """credits_reserved on create is the table's figure for the request (no longer duration x 6)."""
    usage = create(sandbox, {**SEED, **changes}).json()["usage"]
    assert usage == {"billing_rule": "per_second", "user_group": "default", "credits_reserved": credits}


def test_a_completed_task_reports_credits_used(sandbox: httpx.Client) -> None:
    """On completion credits_used is the reserved figure."""
    task = final(sandbox, create(sandbox, SEED).json()["id"])
    assert task["status"] == "completed"
    assert task["usage"]["credits_used"] == task["usage"]["credits_reserved"] == 60.0


def test_a_failed_task_is_not_billed(tmp_path: Path) -> None:
    """A failed task reports no credits_used: EvoLink does not bill failures."""
    with running_sandbox(tmp_path, speed=QUICK, fail_rate=1.0) as running, \
            httpx.Client(base_url=running.url) as client:
        task = final(client, create(client, SEED).json()["id"])
    assert task["status"] == "failed" and "credits_used" not in task["usage"]


def test_a_table_given_to_the_sandbox_is_the_one_it_bills_by(tmp_path: Path) -> None:
    """SandboxSettings.prices (the relay's RELAY_PRICE_TABLE) decides what tasks reserve."""
    flat = PriceTable({f: {q: Rate(1.0, 0.5) for q in qs} for f, qs in RATES.items()})
    with running_sandbox(tmp_path, speed=QUICK, prices=flat) as running, \
            httpx.Client(base_url=running.url) as client:
        assert create(client, SEED).json()["usage"]["credits_reserved"] == 10.0


def test_reference_videos_are_read_for_their_length_as_evolink_reads_them(tmp_path: Path) -> None:
    """A 12 s reference video and 8 s of output bill (12 + 8) s at the with-video rate."""
    body = {**SEED, "duration": 8, "prompt": "@video1", "image_urls": None}
    with MediaServer() as media, running_sandbox(tmp_path, speed=QUICK) as running, \
            httpx.Client(base_url=running.url) as client:
        body = {k: v for k, v in body.items() if v is not None}
        body["video_urls"] = [media.add("/ref.mp4", render_video(seconds=12, width=640, height=640, audio=False),
                                        content_type="video/mp4")]
        reserved = create(client, body).json()["usage"]["credits_reserved"]
    assert reserved == pytest.approx((12 + 8) * RATES["standard"]["720p"].with_video, abs=0.05)


def test_an_unreadable_reference_video_reserves_what_the_relay_estimates(sandbox: httpx.Client) -> None:
    """A video nobody can read: the sandbox bills the worst case, the same figure as the relay's estimate."""
    body = {**SEED, "video_urls": ["http://127.0.0.1:9/gone.mp4"]}
    reserved = create(sandbox, body).json()["usage"]["credits_reserved"]
    assert reserved == estimate_job(Estimator(), body).credits == estimate(body, [None]).credits
    assert reserved == (15 + 10) * RATES["standard"]["720p"].with_video


# --- SANDBOX_QUOTA ----------------------------------------------------------------------------------


def test_past_the_quota_create_answers_402_insufficient_quota(tmp_path: Path) -> None:
    """With 100 credits, a second 60-credit task is refused with EvoLink's 402 body; nothing is created."""
    with running_sandbox(tmp_path, speed=QUICK, quota=100.0) as running, \
            httpx.Client(base_url=running.url) as client:
        assert create(client, SEED).status_code == 200
        refused = create(client, SEED)
    assert len(list((tmp_path / "tasks").glob("*.json"))) == 1
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert (error["code"], error["type"]) == ("insufficient_quota", "insufficient_quota")
    assert error["message"] == ("Insufficient quota. Please top up your account: this task needs 60 credits and "
                                "40 remain")


def test_failed_tasks_give_their_reservation_back(tmp_path: Path) -> None:
    """A failed task is not billed, so its credits are available again once it has failed."""
    with running_sandbox(tmp_path, speed=QUICK, quota=60.0, fail_rate=1.0) as running, \
            httpx.Client(base_url=running.url) as client:
        first = create(client, SEED).json()["id"]
        assert create(client, SEED).status_code == 402
        final(client, first)
        assert create(client, SEED).status_code == 200


def test_the_client_turns_402_into_a_rejection_and_the_relay_into_a_failed_job(tmp_path: Path) -> None:
    """An exhausted account: the client raises ProviderRejected at once (no retry loop); the relay's job ends
    failed with the provider's code (the account's fault, not the request's), and its hold is released."""
    sleeps: list[float] = []
    with running_sandbox(tmp_path / "sandbox", quota=0.0) as running, \
            EvoLinkClient("sk-evo-1", running.url, sleep=sleeps.append) as client:
        with pytest.raises(ProviderRejected) as info:
            client.create_task(SEED, idempotency_key="job_abc.1")
        settings = Settings.from_env({"RELAY_DATA_DIR": str(tmp_path / "relay"), "EVOLINK_BASE_URL": running.url,
                                      "RELAY_CALLBACK_SECRET": "k1:" + "s" * 32})
        relay = build_relay(settings, provider=client)
        try:
            job = submit(relay, dict(SEED))
        finally:
            relay.close()
    assert (info.value.status, info.value.code, sleeps) == (402, "insufficient_quota", [])
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error["provider_code"] == "insufficient_quota" and "top it up" in job.error["message"]
    assert job.credits_held is not None and job.credits_held > 0 and job.hold_period is not None


# --- SANDBOX_MAX_CONCURRENCY ------------------------------------------------------------------------


def test_past_the_plans_concurrency_create_answers_429_with_retry_after(tmp_path: Path) -> None:
    """One task at a time: a second create gets 429 rate_limit_exceeded with Retry-After; later it fits."""
    with running_sandbox(tmp_path, speed=SLOW, max_concurrency=1) as running, \
            httpx.Client(base_url=running.url) as client:
        first = create(client, SEED).json()["id"]
        refused = create(client, SEED)
        final(client, first)
        admitted = create(client, SEED)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 5  # until the running task is due to end
    error = refused.json()["error"]
    assert (error["code"], error["type"]) == ("rate_limit_exceeded", "rate_limit_error")
    assert "the plan allows 1 at once" in error["message"]
    assert admitted.status_code == 200


def test_the_client_reports_a_lasting_429_as_unavailable_with_retry_after(tmp_path: Path) -> None:
    """Past its retry attempts the client raises ProviderUnavailable carrying the sandbox's Retry-After."""
    sleeps: list[float] = []
    with running_sandbox(tmp_path, speed=SLOW / 4, max_concurrency=1) as running, \
            EvoLinkClient("sk-evo-1", running.url, retry=RetryPolicy(attempts=3), sleep=sleeps.append) as client:
        client.create_task(SEED, idempotency_key="job_a.1")
        with pytest.raises(ProviderUnavailable) as info:
            client.create_task(SEED, idempotency_key="job_b.1")
    assert (info.value.status, info.value.code) == (429, "rate_limit_exceeded")
    assert info.value.retry_after is not None and info.value.retry_after >= 1
    assert len(sleeps) == 2 and all(wait >= 1 for wait in sleeps)  # each retry waited as Retry-After said
