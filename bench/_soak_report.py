"""The soak's figures from what it observed, and its plot (RSS, storage and throughput over time).

Everything here works on plain records the driver collected, so it can be read without the
processes that produced them:

* a :class:`Sample` every few seconds: the relay's RSS (its current process; a new one after each
  kill), the storage's size and the terminal events seen so far;
* the events the audit subscriber received (every delivery, duplicates included);
* what was submitted (job id and when it was accepted), the kill times, the clean-up passes.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["MIB", "RSS_TARGET_MIB", "TERMINAL_TYPES", "Observed", "Sample", "dump", "figures", "plot"]

MIB = 1024 * 1024
RSS_TARGET_MIB = 50.0
TERMINAL_TYPES = frozenset({"completed", "failed", "expired", "rejected", "cancelled"})


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # seconds since the soak started
    pid: int | None  # the relay process sampled (None while it restarts)
    rss: int | None  # bytes
    storage: int  # bytes: the data directory (local) or the bucket plus the data directory (aws)
    ended: int  # jobs with a terminal event so far


@dataclass
class Observed:
    """What the driver saw, as it saw it."""

    started: float  # epoch seconds
    submitted: dict[int, tuple[str, float]] = field(default_factory=dict)  # index -> (job id, accepted at, epoch)
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # every event message received
    seen_videos: dict[str, int] = field(default_factory=dict)  # key -> size, from listings and heads
    samples: list[Sample] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)  # seconds since start
    restart_seconds: list[float] = field(default_factory=list)
    gc_passes: list[dict[str, Any]] = field(default_factory=list)
    monitor_errors: int = 0


def _kind(event: Mapping[str, Any]) -> str:
    return str(event.get("type", "")).rsplit(".", 1)[-1]


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _mib(value: float) -> float:
    return round(value / MIB, 1)


def event_figures(observed: Observed) -> dict[str, Any]:
    """Jobs ended and published, events lost or doubled, videos stored against published."""
    unique = {str(e["id"]): e for e in observed.deliveries}
    terminal: dict[str, set[str]] = {}
    for event_id, event in unique.items():
        if _kind(event) in TERMINAL_TYPES:
            terminal.setdefault(str(event["subject"]), set()).add(event_id)
    job_ids = {job_id for job_id, _ in observed.submitted.values()}
    outcome: dict[str, int] = {}
    published, stored = 0, 0
    for job_id in job_ids:
        for event_id in terminal.get(job_id, ()):
            event = unique[event_id]
            outcome[_kind(event)] = outcome.get(_kind(event), 0) + 1
            if _kind(event) == "completed":
                published += 1
                outputs = event.get("data", {}).get("outputs", [])
                stored += bool(outputs) and all(observed.seen_videos.get(o["key"]) == o["size"] for o in outputs)
    codes: dict[str, int] = {}
    for event in unique.values():
        if _kind(event) == "failed":
            code = str((event.get("data", {}).get("error") or {}).get("code", "?"))
            codes[code] = codes.get(code, 0) + 1
    return {"jobs_submitted": len(job_ids), "jobs_ended": sum(1 for j in job_ids if terminal.get(j)),
            "jobs_published": published, "outcomes": outcome, "failure_codes": codes, "videos_stored": stored,
            "event_messages": len(observed.deliveries), "unique_events": len(unique),
            "duplicate_deliveries": len(observed.deliveries) - len(unique),
            "jobs_with_two_terminal_events": sum(1 for ids in terminal.values() if len(ids) > 1),
            "events_for_unknown_jobs": sum(1 for j in terminal if j not in job_ids)}


def rss_figures(samples: Sequence[Sample], duration: float) -> dict[str, Any]:
    """RSS growth over the last two thirds: its peak there less the peak of the first third.

    Each kill starts a new process, so the growth of each process's own life is given too: its
    last RSS less its RSS one third into that life."""
    rss = [(s.at, s.rss, s.pid) for s in samples if s.rss is not None]
    if not rss:
        return {"rss_growth_last_two_thirds_mib": None, "rss_target_met": False}
    third = duration / 3
    first = [r for at, r, _ in rss if at < third] or [rss[0][1]]
    rest = [r for at, r, _ in rss if at >= third] or [rss[-1][1]]
    growth = _mib(max(rest) - max(first))
    lives: dict[int, list[tuple[float, int]]] = {}
    for at, value, pid in rss:
        lives.setdefault(pid or 0, []).append((at, value))
    per_life = []
    for points in lives.values():
        start, end = points[0][0], points[-1][0]
        settled = [v for at, v in points if at >= start + (end - start) / 3]
        per_life.append(_mib(settled[-1] - settled[0]) if len(settled) > 1 else 0.0)
    return {"rss_mib": {"first": _mib(rss[0][1]), "peak": _mib(max(r for _, r, _ in rss)), "last": _mib(rss[-1][1])},
            "rss_peak_first_third_mib": _mib(max(first)), "rss_peak_last_two_thirds_mib": _mib(max(rest)),
            "rss_growth_last_two_thirds_mib": growth, "rss_growth_per_process_mib": per_life,
            "rss_target_mib": RSS_TARGET_MIB, "rss_target_met": growth < RSS_TARGET_MIB}


def storage_figures(samples: Sequence[Sample], retention_from: float | None, until: float) -> dict[str, Any]:
    """Storage size over time; from when retention applies (its first removal plus one window) to the last
    submit (after it, storage only shrinks), the median of the first and second halves, and the growth
    between them."""
    sizes = [(s.at, s.storage) for s in samples]
    if not sizes:
        return {}
    out: dict[str, Any] = {"storage_mib": {"first": _mib(sizes[0][1]), "peak": _mib(max(v for _, v in sizes)),
                                           "last": _mib(sizes[-1][1])}}
    steady = [v for at, v in sizes if retention_from is not None and retention_from <= at <= until]
    if len(steady) >= 4:
        half = len(steady) // 2
        before, after = statistics.median(steady[:half]), statistics.median(steady[half:])
        out |= {"storage_retention_from_min": round((retention_from or 0) / 60, 1),
                "storage_median_first_half_mib": _mib(before), "storage_median_second_half_mib": _mib(after),
                "storage_growth_after_retention_mib": _mib(after - before),
                "storage_flat": after - before <= max(0.1 * before, 8 * MIB)}
    else:
        out |= {"storage_flat": None, "storage_note": "retention never applied within the run"}
    return out


def throughput_figures(observed: Observed, submit_seconds: float) -> dict[str, Any]:
    """Jobs ended per minute (by their terminal event's time) over the buckets of steady load, and
    submit-to-event latency. Buckets are a minute long, or a tenth of the submit window if shorter;
    the first is left out (the pipeline fills up)."""
    bucket = min(60.0, submit_seconds / 10)
    per_bucket: dict[int, int] = {}
    latencies: list[float] = []
    accepted = {job_id: at for job_id, at in observed.submitted.values()}
    seen: set[str] = set()
    for event in observed.deliveries:
        job_id = str(event.get("subject"))
        if _kind(event) not in TERMINAL_TYPES or job_id in seen or job_id not in accepted:
            continue
        seen.add(job_id)
        at = _epoch(str(event["time"]))
        index = int((at - observed.started) // bucket)
        per_bucket[index] = per_bucket.get(index, 0) + 1
        latencies.append(max(0.0, at - accepted[job_id]))
    steady = [per_bucket.get(i, 0) * 60 / bucket for i in range(1, int(submit_seconds // bucket))]
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0

    return {"jobs_per_minute": {"min": round(min(steady, default=0), 1),
                                "median": round(statistics.median(steady), 1) if steady else 0,
                                "max": round(max(steady, default=0), 1)},
            "offered_jobs_per_minute": round(len(observed.submitted) / max(submit_seconds, 1) * 60, 1),
            "submit_to_event_s": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)}}


def figures(observed: Observed, *, duration: float, submit_seconds: float, retention_window: float) -> dict[str, Any]:
    removed_at = [p["at"] for p in observed.gc_passes if p.get("removed", 0) > 0]
    retention_from = removed_at[0] + retention_window if removed_at else None
    return {**event_figures(observed), **rss_figures(observed.samples, duration),
            **storage_figures(observed.samples, retention_from, submit_seconds),
            **throughput_figures(observed, submit_seconds),
            "kills": len(observed.kills), "kill_minutes": [round(k / 60, 1) for k in observed.kills],
            "restart_seconds": [round(s, 2) for s in observed.restart_seconds],
            "gc_passes": len(observed.gc_passes),
            "gc_removed": _sum_removed(observed.gc_passes), "monitor_errors": observed.monitor_errors}


def _sum_removed(passes: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in passes:
        for kind, count in one.get("kinds", {}).items():
            total[kind] = total.get(kind, 0) + int(count)
    return total


def dump(observed: Observed, path: Path) -> None:
    """The observations (samples, kills, clean-up passes, submits, events) as JSON, to plot or count again."""
    import json
    from dataclasses import asdict

    path.write_text(json.dumps({**asdict(observed), "samples": [asdict(s) for s in observed.samples]}))


def plot(observed: Observed, path: Path, title: str) -> Path:
    """RSS, storage and jobs ended per minute against minutes since start; kills as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = observed.samples
    minutes = [s.at / 60 for s in samples]
    fig, (rss_ax, disk_ax, rate_ax) = plt.subplots(3, 1, figsize=(10, 8.5), sharex=True)
    rss_points = [(s.at / 60, s.rss / MIB) for s in samples if s.rss is not None]
    rss_ax.plot([m for m, _ in rss_points], [r for _, r in rss_points], ".", markersize=2, color="tab:blue")
    rss_ax.set_ylabel("relay RSS (MiB)")
    disk_ax.plot(minutes, [s.storage / MIB for s in samples], color="tab:green")
    disk_ax.set_ylabel("storage (MiB)")
    ended = [(s.at / 60, s.ended) for s in samples]
    rates = [(b[0], (b[1] - a[1]) / max(b[0] - a[0], 1e-9)) for a, b in itertools.pairwise(ended)]
    rate_ax.plot([m for m, _ in rates], _smooth([r for _, r in rates], 6), color="tab:orange", label="ended")
    submitted = sorted(at - observed.started for _, at in observed.submitted.values())
    if len(submitted) > 1:
        offered = (len(submitted) - 1) / max(submitted[-1] - submitted[0], 1e-9) * 60
        rate_ax.hlines(offered, submitted[0] / 60, submitted[-1] / 60, colors="grey", linestyles=":",
                       label="submitted")
    rate_ax.legend(loc="lower left", fontsize=8)
    rate_ax.set_ylabel("jobs ended / minute")
    rate_ax.set_xlabel("minutes since start")
    for axis in (rss_ax, disk_ax, rate_ax):
        for kill in observed.kills:
            axis.axvline(kill / 60, color="tab:red", linestyle="--", linewidth=0.8)
        axis.grid(alpha=0.3)
    rss_ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _smooth(values: Sequence[float], width: int) -> list[float]:
    """A trailing mean over ``width`` points (samples are a few seconds apart; a minute reads better)."""
    out = []
    for index in range(len(values)):
        window = values[max(0, index - width + 1): index + 1]
        out.append(sum(window) / len(window))
    return out
