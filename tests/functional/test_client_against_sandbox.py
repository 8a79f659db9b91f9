"""The EvoLink client against the sandbox over real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.base.errors import ProviderRejected, ProviderUnavailable
from handlers.domain.pricing import DEFAULT_PRICE_TABLE
from handlers.provider.evolink import EvoLinkClient, RetryPolicy
from tests.support.servers import running_sandbox, wait_until

REQUEST = {"model": "seedance-2.0-fast-reference-to-video", "prompt": "a paper boat on a river",
           "image_urls": ["https://example.com/boat.webp"], "duration": 4, "quality": "480p"}


def test_create_then_read_until_completed(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, speed=400.0) as sandbox, EvoLinkClient("sk-evo-1", sandbox.url) as client:
        created = client.create_task(REQUEST, idempotency_key="job_abc.1")
        final = wait_until(lambda: (t := client.get_task(created.id)).is_final and t, 20.0, "completion")
    fast_480p = DEFAULT_PRICE_TABLE.rates["fast"]["480p"].credits
    assert created.status == "pending" and created.estimated_time and created.credits_reserved == 4 * fast_480p
    assert final.outcome == "completed" and final.results[0].startswith(sandbox.url)


def test_rejections_carry_the_providers_code_and_status(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, api_key="sk-evo-right") as sandbox, \
            EvoLinkClient("sk-evo-wrong", sandbox.url) as client, pytest.raises(ProviderRejected) as info:
        client.create_task(REQUEST, idempotency_key="job_abc.1")
    assert (info.value.status, info.value.code) == (401, "unauthorized")


def test_injected_429_and_503_are_retried_then_reported(tmp_path: Path) -> None:
    sleeps: list[float] = []
    with running_sandbox(tmp_path, create_error_rate=1.0, seed=3) as sandbox, \
            EvoLinkClient("sk-evo-1", sandbox.url, retry=RetryPolicy(attempts=6), sleep=sleeps.append) as client:
        with pytest.raises((ProviderUnavailable, ProviderRejected)) as info:
            client.create_task(REQUEST, idempotency_key="job_abc.1")
    assert info.value.status in (429, 500, 503)
    assert len(sleeps) >= 1 and all(s == 1.0 for s in sleeps)  # every retry honoured Retry-After: 1
