"""Loses nothing, duplicates nothing: scenarios with exact expected counts, on both backends."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from handlers.sandbox.engine import FAILURE_MESSAGES
from tests.reliability.harness import record, stack, summary
from tests.support.faults import Faults

pytestmark = pytest.mark.slow


def test_every_callback_four_times_gives_one_copy_and_one_event_per_job(
        backend: str, moto_for: str | None, tmp_path: Path, scale: int) -> None:
    count = (200 if backend == "local" else 50) * scale  # moto takes about 1 s a job here: 250 in `make soak`
    with stack(backend, tmp_path, moto=moto_for, callback_duplicate=3) as pipeline:
        jobs = pipeline.wait_all_final(pipeline.submit_many(count), timeout=240)
        figures = summary(pipeline, jobs)
    record(f"duplicate-callbacks[{backend}]", figures)
    assert figures["statuses"] == {"published": count}
    assert (figures["stored_videos"], figures["unique_events"], figures["event_messages"]) == (count, count, count)
    assert figures["dead_letters"] == {"ingest": 0, "audit": 0}


def test_every_callback_lost_still_completes_every_job_through_the_reconciler(
        backend: str, moto_for: str | None, tmp_path: Path, scale: int) -> None:
    count = 40 * scale
    with stack(backend, tmp_path, moto=moto_for, callback_drop=1.0) as pipeline:
        jobs = pipeline.wait_all_final(pipeline.submit_many(count), timeout=180)
        figures = summary(pipeline, jobs) | {"callbacks_dropped": pipeline.sandbox.engine.sender.dropped}
    record(f"lost-callbacks[{backend}]", figures)
    assert figures["callbacks_dropped"] == count
    assert figures["statuses"] == {"published": count}
    assert (figures["stored_videos"], figures["unique_events"], figures["event_messages"]) == (count, count, count)


def test_twenty_percent_storage_and_queue_errors_complete_every_job_exactly_once(
        backend: str, moto_for: str | None, tmp_path: Path, scale: int) -> None:
    # Every fifth AWS request fails, each with the SDK's backoff: 15 jobs in `make test`, 150 in `make soak`.
    count = 50 * scale if backend == "local" else (15 if scale == 1 else 30 * scale)
    faults = Faults(error_rate=0.1, reset_rate=0.1) if backend == "aws" else None
    env = {"RELAY_QUEUE_VISIBILITY_TIMEOUT": "5"}
    with stack(backend, tmp_path, moto=moto_for, aws_faults=faults, relay_env=env,
               local_fault_rate=0.2 if backend == "local" else 0.0) as pipeline:
        jobs = pipeline.wait_all_final(pipeline.submit_many(count), timeout=300)
        figures = summary(pipeline, jobs)
        injected = faults.counts if faults else {"injected": _local_injected(pipeline)}
    record(f"storage-and-queue-errors[{backend}]", figures | {"faults": injected})
    assert figures["statuses"] == {"published": count}
    assert (figures["stored_videos"], figures["unique_events"]) == (count, count)
    assert figures["event_messages"] == count
    assert figures["incomplete_uploads"] == 0
    assert sum(v for k, v in injected.items() if k != "forwarded") > count  # the faults really happened


def _local_injected(pipeline: object) -> int:
    relay = pipeline.relay  # type: ignore[attr-defined]
    return int(relay.blobs.dice.injected + relay.ingest_queue.dice.injected + relay.bus.dice.injected)


def test_a_flaky_provider_still_completes_every_job_exactly_once(
        backend: str, moto_for: str | None, tmp_path: Path) -> None:
    """20 % of creates refused (429/500/503); 20 % of task reads and downloads answered 503 or cut off."""
    count = 20
    reads = Faults(error_rate=0.1, reset_rate=0.1, applies=lambda r: r.method == "GET")
    with stack(backend, tmp_path, moto=moto_for, provider_faults=reads, create_error_rate=0.2) as pipeline:
        jobs = pipeline.wait_all_final(pipeline.submit_many(count), timeout=180)
        figures = summary(pipeline, jobs) | {"provider_faults": reads.counts}
    record(f"flaky-provider[{backend}]", figures)
    assert figures["statuses"] == {"published": count}
    assert (figures["stored_videos"], figures["unique_events"], figures["event_messages"]) == (count, count, count)
    assert reads.counts["errors"] + reads.counts["resets"] > 0


def test_each_provider_error_code_gives_the_right_terminal_event(
        backend: str, moto_for: str | None, tmp_path: Path) -> None:
    """One task per job (``RELAY_MAX_ATTEMPTS=1``): each code's own event, with no retry in between."""
    codes = [*FAILURE_MESSAGES, "cancelled"]
    with stack(backend, tmp_path, moto=moto_for, fail_rate=1.0, fail_code=",".join(codes),
               relay_env={"RELAY_MAX_ATTEMPTS": "1"}) as pipeline:
        jobs = pipeline.wait_all_final(pipeline.submit_many(len(codes)), timeout=120)
        events = pipeline.delivered_events()
    seen = Counter((e["type"].rsplit(".", 1)[1], (e["data"].get("error") or {}).get("code")) for e in events)
    expected = Counter(("cancelled" if code in ("request_cancelled", "cancelled") else "failed",
                        code) for code in codes)
    record(f"provider-error-codes[{backend}]", {"events": len(events), "by_type": dict(Counter(k[0] for k in seen))})
    assert seen == expected
    assert {j.status.value for j in jobs.values()} == {"failed", "cancelled"}


def test_a_result_url_expired_before_the_copy_fails_clearly_without_a_retry_loop(
        backend: str, moto_for: str | None, tmp_path: Path) -> None:
    count = 5
    with stack(backend, tmp_path, moto=moto_for, url_ttl=0.0) as pipeline:
        jobs = pipeline.wait_all_final(pipeline.submit_many(count), timeout=60)
        figures = summary(pipeline, jobs) | {"download_attempts": pipeline.sandbox.engine.downloads}
        depth = pipeline._ports()[0].depth()
    record(f"expired-result-url[{backend}]", figures)
    assert figures["statuses"] == {"failed": count}
    assert {j.error["code"] for j in jobs.values()} == {"result_expired"}  # type: ignore[index]
    assert figures["download_attempts"] == count and figures["stored_videos"] == 0
    assert figures["unique_events"] == count and depth == {"visible": 0, "in_flight": 0, "dead": 0}
