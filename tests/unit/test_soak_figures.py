"""The soak's figures from plain observations, and its flags: what each figure counts, and what a bad flag says."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from bench import soak
from bench._soak_report import MIB, Observed, Sample, event_figures, rss_figures, storage_figures

STARTED = 1_800_000_000.0


def _event(event_id: str, job: str, kind: str, *, key: str | None = None, size: int = 10) -> dict[str, Any]:
    outputs = [{"key": key, "size": size}] if key else []
    return {"id": event_id, "subject": job, "type": f"io.seedance-relay.job.{kind}",
            "time": datetime.fromtimestamp(STARTED + 5, UTC).isoformat(), "data": {"outputs": outputs}}


def _observed(*events: dict[str, Any], videos: dict[str, int] | None = None, jobs: int = 3) -> Observed:
    observed = Observed(started=STARTED, seen_videos=dict(videos or {}))
    observed.submitted = {i: (f"job_{i}", STARTED + i) for i in range(jobs)}
    observed.deliveries = list(events)
    return observed


def test_a_job_counts_as_ended_once_whatever_delivered_its_event_twice() -> None:
    figures = event_figures(_observed(_event("e0", "job_0", "completed", key="jobs/job_0/o.mp4"),
                                      _event("e0", "job_0", "completed", key="jobs/job_0/o.mp4"),
                                      _event("e1", "job_1", "failed"), videos={"jobs/job_0/o.mp4": 10}))
    assert (figures["jobs_ended"], figures["jobs_published"], figures["videos_stored"]) == (2, 1, 1)
    assert (figures["event_messages"], figures["unique_events"], figures["duplicate_deliveries"]) == (3, 2, 1)
    assert figures["jobs_with_two_terminal_events"] == 0


def test_two_distinct_terminal_events_for_one_job_are_counted_as_published_twice() -> None:
    figures = event_figures(_observed(_event("e0", "job_0", "completed"), _event("e9", "job_0", "completed")))
    assert figures["jobs_with_two_terminal_events"] == 1


def test_a_video_counts_as_stored_only_at_the_size_its_event_names() -> None:
    figures = event_figures(_observed(_event("e0", "job_0", "completed", key="jobs/job_0/o.mp4", size=10),
                                      videos={"jobs/job_0/o.mp4": 9}))
    assert (figures["jobs_published"], figures["videos_stored"]) == (1, 0)


def test_at_risk_is_not_an_end() -> None:
    assert event_figures(_observed(_event("e0", "job_0", "at_risk")))["jobs_ended"] == 0


def _samples(points: Sequence[tuple[float, int, float]]) -> list[Sample]:
    return [Sample(at=at, pid=pid, rss=int(mib * MIB), storage=int(mib * MIB), ended=0) for at, pid, mib in points]


def test_rss_growth_is_the_last_two_thirds_peak_less_the_first_thirds() -> None:
    samples = _samples([(0, 1, 80), (9, 1, 100), (20, 2, 90), (25, 2, 130), (29, 2, 120)])
    figures = rss_figures(samples, duration=30)
    assert figures["rss_growth_last_two_thirds_mib"] == 30.0
    assert figures["rss_target_met"] is True
    assert rss_figures(_samples([(0, 1, 80), (20, 1, 131)]), duration=30)["rss_target_met"] is False


def test_storage_is_judged_from_retention_to_the_last_submit_only() -> None:
    growing = _samples([(t, 1, 100 + t) for t in range(0, 60, 5)] + [(t, 1, 1) for t in range(60, 120, 5)])
    figures = storage_figures(growing, retention_from=10, until=60)
    assert figures["storage_growth_after_retention_mib"] > 0
    flat = _samples([(t, 1, 100 + (t % 10)) for t in range(0, 60, 5)])
    assert storage_figures(flat, retention_from=10, until=60)["storage_flat"] is True
    assert storage_figures(flat, retention_from=None, until=60)["storage_flat"] is None


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--fault-rate", "0.7", "argument --fault-rate: must be from 0 to 0.5, got 0.7"),
    ("--jobs", "0", "argument --jobs: must be more than 0, got 0"),
    ("--minutes", "soon", "argument --minutes: 'soon' is not a number"),
    ("--kill-every", "-1", "argument --kill-every: must be 0 or more, got -1"),
    ("--backend", "gcp", "argument --backend: invalid choice: 'gcp'"),
])
def test_a_bad_flag_is_refused_naming_it(flag: str, value: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        soak.parse([flag, value])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_each_backend_has_its_own_defaults_and_flags_win() -> None:
    _, local = soak.parse([])
    _, aws = soak.parse(["--backend", "aws", "--jobs", "50"])
    assert local is not None and aws is not None
    assert (local.jobs, local.minutes, local.kill_every, local.fault_rate) == (10_000, 31.0, 10.0, 0.1)
    assert (aws.jobs, aws.minutes, aws.kill_every) == (50, 40.0, 10.0)
