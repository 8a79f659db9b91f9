"""Retention, pure parts: each kind's cut-off from the settings, when a scheduled pass collects, and the table
``seedance-relay gc`` prints."""

from __future__ import annotations

import pytest

from handlers.app.settings import Settings
from handlers.cli.gc import render_report
from handlers.usecases.retention import DAY, Collected, GarbageReport, Kind, cutoffs, gc_due

NOW = 1_800_000_000.0


def test_cutoffs_follow_the_settings_and_videos_are_kept_forever_by_default() -> None:
    settings = Settings.from_env({"RELAY_JOB_RETENTION": "7", "RELAY_UPLOAD_URL_TTL": "600",
                                  "RELAY_UPLOAD_GRACE": "60", "RELAY_QUEUE_RETENTION": "3",
                                  "RELAY_EVENT_RETENTION": "30"})
    assert cutoffs(settings, NOW) == {Kind.JOBS: NOW - 7 * DAY, Kind.VIDEOS: None, Kind.UPLOADS: NOW - 660,
                                      Kind.MESSAGES: NOW - 3 * DAY, Kind.EVENTS: NOW - 30 * DAY}


def test_a_video_retention_and_a_lag_move_the_cutoffs() -> None:
    settings = Settings.from_env({"RELAY_VIDEO_RETENTION": "10"})
    assert cutoffs(settings, NOW, lag=2 * DAY)[Kind.VIDEOS] == NOW - 12 * DAY
    assert cutoffs(settings, NOW, lag=2 * DAY)[Kind.JOBS] == NOW - 92 * DAY


def test_a_retention_may_be_a_fraction_of_a_day() -> None:
    """A short soak keeps jobs and messages for minutes."""
    settings = Settings.from_env({"RELAY_JOB_RETENTION": "0.01", "RELAY_QUEUE_RETENTION": "0.5"})
    assert cutoffs(settings, NOW)[Kind.JOBS] == pytest.approx(NOW - 864)
    assert cutoffs(settings, NOW)[Kind.MESSAGES] == pytest.approx(NOW - 43_200)


def test_the_defaults_keep_an_upload_one_day() -> None:
    settings = Settings.from_env({})
    assert settings.upload_url_ttl + settings.upload_grace == DAY


@pytest.mark.parametrize(("now", "due"), [(7200.0, True), (7200.0 + 299, True), (7200.0 + 300, False),
                                          (7200.0 + 3599, False), (10800.0 + 1, True)])
def test_a_scheduled_pass_collects_in_the_first_run_after_each_hour(now: float, due: bool) -> None:
    assert gc_due(now, every=3600, period=300) is due


def test_a_pass_that_should_run_more_often_than_the_schedule_collects_every_run() -> None:
    assert all(gc_due(now, every=60, period=300) for now in (1.0, 1234.5, 99999.0))


def report(dry_run: bool) -> GarbageReport:
    return GarbageReport(now=NOW, dry_run=dry_run, reclaimed=3 * 1024 * 1024, collected=(
        Collected(Kind.JOBS, NOW - 90 * DAY, 1200, 5_000_000),
        Collected(Kind.VIDEOS, None, skipped="kept forever"),
        Collected(Kind.UPLOADS, NOW - DAY, 3, 900),
        Collected(Kind.MESSAGES, NOW - 14 * DAY, 0, 0),
        Collected(Kind.EVENTS, NOW - 30 * DAY, 15, None)))


def test_the_report_table_shows_counts_sizes_and_cutoffs() -> None:
    assert render_report(report(dry_run=False)).splitlines() == [
        "KIND      REMOVED    BYTES  OLDER THAN (UTC)",
        "jobs         1200  4.8 MiB  2026-10-17 08:00",
        "videos          -        -  kept forever",
        "uploads         3    900 B  2027-01-14 08:00",
        "messages        0      0 B  2027-01-01 08:00",
        "events         15        -  2026-12-16 08:00",
        "database space given back: 3.0 MiB",
    ]


def test_a_dry_run_report_says_would_remove_and_that_nothing_was_removed() -> None:
    lines = render_report(report(dry_run=True)).splitlines()
    assert lines[0].startswith("KIND      WOULD REMOVE")
    assert lines[-1] == "dry run: nothing was removed"
