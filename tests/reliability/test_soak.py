"""The soak, small: 200 jobs in a minute through a relay killed once, with 10% storage and provider faults.

``bench/soak.py`` runs the relay as ``seedance-relay serve`` runs it, in its own process, and a
sandbox process beside it; ``make soak`` runs it at full size (10,000 jobs, 31 minutes, a kill every
10). Here it runs its smallest useful shape and the test checks what the soak checks: every job
ended, no event was lost or published twice, every published job's video is stored, and the plot
was written. A job whose create the kill cut off has an unknown outcome and is never sent again: it
ends ``expired``, after the 90 s ``RELAY_EXPIRE_AFTER`` this run gives it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import soak
from tests.reliability.harness import record

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(400)]
PNG = b"\x89PNG\r\n\x1a\n"


def test_a_short_soak_with_a_kill_and_faults_loses_and_doubles_nothing(tmp_path: Path) -> None:
    figures = soak.main(["--jobs", "200", "--minutes", "1", "--kill-every", "0.5", "--fault-rate", "0.1",
                         "--retention", "40", "--gc-every", "10", "--sample", "2", "--drain-timeout", "180",
                         "--expire-after", "90",
                         "--out", str(tmp_path)])
    record("soak[local]", {k: figures[k] for k in (
        "jobs_submitted", "jobs_ended", "jobs_published", "videos_stored", "event_messages", "unique_events",
        "dead_letters_total", "kills", "injected_storage_faults", "gc_removed", "rss_mib", "storage_mib",
        "duration_min")})
    assert figures["kills"] == 1
    assert figures["jobs_submitted"] == figures["jobs_ended"] == 200
    assert figures["unfinished_records"] == 0
    assert figures["event_messages"] == figures["unique_events"]
    assert figures["jobs_with_two_terminal_events"] == 0
    assert figures["videos_stored"] == figures["jobs_published"] > 0
    assert sum(figures["injected_storage_faults"].values()) > 0  # the faults were really injected
    assert figures["gc_removed"]["videos"] > 0  # retention applied within the run
    plot = Path(figures["plot"])
    assert plot.parent == tmp_path
    assert plot.read_bytes()[:8] == PNG
