"""Replay under live traffic, on both backends: a subscriber added after a run of jobs catches up with
``seedance-relay events replay`` (a real process) while new jobs keep publishing, and misses nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from handlers.app.settings import Settings
from handlers.app.wiring import build_event_log, subscriber_filters
from handlers.usecases.replay import ReplayRequest, replay
from tests.reliability.harness import REQUEST, Stack, record, stack
from tests.support.servers import wait_until

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).with_name("seedance-relay"))
SUBSCRIBERS = {"audit": ["*"], "late": ["*"]}


def add_late_subscriber(pipeline: Stack) -> None:
    """Stop the relay, add subscriber ``late`` (its queue and subscription on AWS), start it again."""
    pipeline.stop_relay()
    pipeline.env["RELAY_SUBSCRIBERS"] = "audit:*,late:*"
    if pipeline.backend == "aws":
        from handlers.adapters.aws import AwsNames, aws_clients
        from handlers.adapters.aws.bootstrap import bootstrap

        names = AwsNames.from_env(pipeline.env)
        bootstrap(aws_clients(names, endpoint_url=pipeline.moto), names, SUBSCRIBERS, max_receives=8,
                  visibility_timeout=30)
    pipeline.start_relay()


def submit_live(pipeline: Stack, count: int, stop: threading.Event, ids: list[str]) -> None:
    """Submit ``count`` new jobs, one every 20 ms, while the replay runs."""
    assert pipeline.api is not None
    for index in range(count):
        if stop.is_set():
            return
        response = pipeline.api.post("/v1/jobs", json={**REQUEST, "metadata": {"live": index}},
                                     headers={"Idempotency-Key": f"live-{index}"})
        assert response.status_code == 202, response.text
        ids.append(str(response.json()["id"]))
        time.sleep(0.02)


def logged_ids(pipeline: Stack) -> list[str]:
    """Every event id in the relay's event log, in publish order."""
    settings = Settings.from_env({**pipeline.env, "AWS_ENDPOINT_URL": str(pipeline.moto or "")})
    log, close = build_event_log(settings)
    ids: list[str] = []
    cursor: str | None = None
    try:
        while True:
            page, cursor = log.page(cursor=cursor, limit=500)
            ids += [str(entry.event["id"]) for entry in page]
            if cursor is None:
                return ids
    finally:
        close()


def drain_late(pipeline: Stack, expected: int, timeout: float = 60.0) -> list[str]:
    """Every message in ``late``'s queue (duplicates included), once at least ``expected`` arrived."""
    queue = pipeline._ports()[1].subscriber("late")
    seen: list[str] = []

    def enough() -> bool:
        while messages := queue.receive(max_messages=10):
            for message in messages:
                seen.append(str(message.body["id"]))
                queue.ack(message)
        return len(set(seen)) >= expected

    wait_until(enough, timeout, f"{expected} events in late's queue", interval=0.2)
    return seen


def in_order(sequence: list[str], wanted: list[str]) -> bool:
    """Whether ``wanted`` appears in ``sequence`` in that order (as a subsequence, first occurrences)."""
    first = {}
    for position, item in enumerate(sequence):
        first.setdefault(item, position)
    positions = [first[item] for item in wanted if item in first]
    return positions == sorted(positions) and len(positions) == len(wanted)


def run_replay(pipeline: Stack) -> tuple[int, float]:
    """``events replay --subscriber late`` as a process; how many events it re-delivered, and its wall time."""
    env = {**os.environ, **pipeline.env}
    started = time.monotonic()
    result = subprocess.run([EXE, "events", "replay", "--subscriber", "late"], env=env, capture_output=True,
                            text=True, timeout=300)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"replayed (\d+) events? to subscriber 'late', published .*\n", result.stdout)
    assert match is not None, result.stdout
    return int(match[1]), seconds


def timed_replay(pipeline: Stack) -> tuple[int, float]:
    """Everything in the log to ``late`` again, in process: the use case's own rate, without start-up."""
    settings = Settings.from_env({**pipeline.env, "AWS_ENDPOINT_URL": str(pipeline.moto or "")})
    log, close = build_event_log(settings)
    try:
        started = time.monotonic()
        summary = replay(log, pipeline._ports()[1], subscriber_filters(settings), ReplayRequest("late"),
                         now=time.time())
        return summary.count, time.monotonic() - started
    finally:
        close()


def test_a_subscriber_added_late_catches_up_under_live_traffic_missing_nothing(
        backend: str, moto_for: str | None, tmp_path: Path, scale: int) -> None:
    before, during = 60 * scale, 20 * scale
    with stack(backend, tmp_path, moto=moto_for) as pipeline:
        pipeline.wait_all_final(pipeline.submit_many(before), timeout=240)
        published = logged_ids(pipeline)
        add_late_subscriber(pipeline)
        stop, live = threading.Event(), []
        feeder = threading.Thread(target=submit_live, args=(pipeline, during, stop, live), name="live-jobs")
        feeder.start()
        try:
            replayed, seconds = run_replay(pipeline)
        finally:
            feeder.join(timeout=120)
            stop.set()
        pipeline.wait_all_final(live, timeout=240)
        everything = logged_ids(pipeline)
        received = drain_late(pipeline, len(everything))
        again, again_seconds = timed_replay(pipeline)
        received_again = drain_late(pipeline, len(everything))
    figures: dict[str, Any] = {
        "published_before": len(published), "published_during": len(everything) - len(published),
        "replayed": replayed, "late_messages": len(received), "late_unique": len(set(received)),
        "missing": len(set(everything) - set(received)), "unexpected": len(set(received) - set(everything)),
        "received_twice": len(received) - len(set(received)),
        "replayed_in_publish_order": in_order(received, published), "replay_process_seconds": round(seconds, 2),
        "second_replay": again, "second_replay_events_per_second": round(again / again_seconds, 1),
        "second_replay_in_publish_order": received_again == everything}
    record(f"replay-late-subscriber[{backend}]", figures)
    assert figures["published_before"] == before and figures["published_during"] == during
    assert before <= replayed <= before + during
    assert figures["missing"] == 0 and figures["unexpected"] == 0
    assert figures["received_twice"] == replayed - before  # live events the replay read as well
    assert again == len(everything) and sorted(received_again) == sorted(everything)
    if backend == "local":  # SQS standard queues keep no strict order
        assert figures["replayed_in_publish_order"] and figures["second_replay_in_publish_order"]
