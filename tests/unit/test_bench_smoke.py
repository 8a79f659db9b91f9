"""The benchmarks still run: each one's smallest configuration, end to end, with no timing asserted.

Each test runs a benchmark's ``main`` with the tiniest arguments it takes (its servers and
load generators still start as real processes on loopback) and checks the shape and the
correctness figures of what it reports, never how fast anything was.
"""

from __future__ import annotations

import pytest

from bench import _pipeline_servers, aws_costs, callback_ack, cold_start, pipeline, result_copy, run_all, submit_latency

pytestmark = pytest.mark.timeout(240)  # a hang guard: each benchmark starts real servers, slow on a busy machine


def test_callback_ack_answers_every_request_on_both_routes() -> None:
    figures = callback_ack.main(["--seconds", "0.3", "--warmup", "0.1", "--rounds", "1", "--connections", "4"])
    assert figures["failures"] == 0
    assert figures["bare"]["rps"] > 0 and figures["callback"]["rps"] > 0
    assert set(figures) >= {"throughput_ratio", "meets_target"}


def test_cold_start_reads_the_entry_modules_from_serverless_yml() -> None:
    assert "handlers.lambdas.api" in cold_start.entry_modules()
    assert {"rich", "uvicorn"} <= cold_start.not_in_layer()


def test_cold_start_times_a_module_against_boto3_in_both_views() -> None:
    figures = cold_start.main(["--runs", "1", "--modules", "handlers.lambdas.api"])
    row = figures["modules"]["handlers.lambdas.api"]
    assert row["venv_import_ms"] > 0 and row["layer_import_ms"] > 0
    assert figures["modules"]["boto3"]["venv_ratio_to_boto3"] == 1.0


def test_result_copy_stores_every_byte_three_ways() -> None:
    figures = result_copy.main(["--sizes", "1M,2M", "--rounds", "1"])
    assert set(figures["results"]["2.0MiB"]) == set(result_copy.VARIANTS)
    assert set(figures["rss_growth_mib"]) == set(result_copy.VARIANTS)


def test_pipeline_publishes_every_job_and_the_sandbox_calls_back_every_task() -> None:
    """The flood, the sandbox's ceiling, then a steady load offered at half the flood's jobs/s."""
    figures = pipeline.main(["--jobs", "3", "--clients", "2", "--timeout", "30", "--steady-seconds", "1"])
    assert figures["all_published"]
    assert figures["relay"]["callbacks_seen"] == 3
    assert figures["sandbox"]["tasks"] == 3
    steady = figures["steady"]
    assert figures["steady_all_published"]
    assert steady["callbacks_seen"] == steady["jobs"] >= 2
    assert figures["relay"]["cpu_ms_per_job"] > 0 and "ingest" in figures["relay"]["cpu_ms_per_job_by_thread"]
    assert figures["relay"]["cpu_ms_per_job_by_thread"]["media_processes"] > 0  # the videos were read in children
    in_threads = figures["relay_media_in_threads"]
    assert in_threads["outcomes"] == {"completed": 3}
    assert "media_processes" not in in_threads["cpu_ms_per_job_by_thread"]
    assert figures["media_processes_speedup"] == round(figures["relay"]["jobs_per_s"] / in_threads["jobs_per_s"], 3)
    assert figures["steady_offered_jobs_per_s"] == round(figures["relay"]["jobs_per_s"] / 2, 2)
    assert figures["steady_meets_target"] == (figures["steady_callback_to_event_p99_ms"] <= 2000)
    assert {f"steady_{what}_p{q}_ms" for what in ("callback_to_event", "submit_to_event")
            for q in (50, 95, 99)} <= set(figures)


def test_pipeline_counts_the_cpu_of_threads_that_ended_as_ended_or_native() -> None:
    before = {"process": 10.0, "threads": {"1": ["ingest", 2.0], "2": ["api", 1.0], "3": ["ingest", 0.5]}}
    after = {"process": 14.0, "threads": {"1": ["ingest", 3.5], "2": ["api", 1.25], "4": ["sandbox", 0.25]}}
    assert _pipeline_servers.cpu_by_group(before, after) == {"ingest": 1.5, "api": 0.25, "sandbox": 0.25,
                                                             "ended_or_native": 2.0}


def test_pipeline_refuses_a_steady_rate_that_is_not_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        pipeline.main(["--steady-rate", "0"])
    assert "--steady-rate: must be greater than 0, got 0" in capsys.readouterr().err


def test_pipeline_counts_the_cpu_of_the_media_reader_processes() -> None:
    before = {"process": 10.0, "threads": {"1": ["ingest", 2.0]}, "children": {"70": 1.0}}
    after = {"process": 11.0, "threads": {"1": ["ingest", 3.0]}, "children": {"70": 1.5, "71": 0.25}}
    assert _pipeline_servers.cpu_by_group(before, after) == {"ingest": 1.0, "ended_or_native": 0.0,
                                                             "media_processes": 0.75}


def test_run_all_knows_every_benchmark_module() -> None:
    assert set(run_all.BENCHMARKS) == {"callback_ack", "result_copy", "cold_start", "pipeline", "submit_latency",
                                      "aws_costs"}


def test_submit_latency_sends_every_submit_on_both_variants() -> None:
    figures = submit_latency.main(["--requests", "12", "--rounds", "1", "--connections", "2"])
    assert figures["all_submitted"]
    assert figures["statuses"] == {"off": {"202 submitted": 12}, "on": {"202 submitted": 12}}
    assert set(figures) >= {"p50_ratio", "p99_ratio", "median_round_p99_ratio", "meets_target"}


@pytest.mark.parametrize(("text", "size"), [("100M", 100 * 1024**2), ("1G", 1024**3), ("512k", 512 * 1024),
                                            ("4096", 4096)])
def test_sizes_are_read_in_binary_units(text: str, size: int) -> None:
    assert result_copy.parse_size(text) == size


def test_the_copy_ratio_pairs_each_round_with_its_own_upload_file() -> None:
    """A slow round slows both variants: each is compared with upload_file of its own round."""
    def run(variant: str, round_: int, seconds: float) -> dict[str, object]:
        return {"variant": variant, "round": round_, "seconds": seconds, "bytes": 1024, "mib_per_s": 1 / seconds,
                "peak_rss_mib": 50.0, "s3_seconds": {}}

    runs = [run("upload_file", 0, 10.0), run("relay", 0, 12.5), run("naive", 0, 20.0),
            run("upload_file", 1, 5.0), run("relay", 1, 5.0), run("naive", 1, 10.0),
            run("upload_file", 2, 6.0), run("relay", 2, 6.6), run("naive", 2, 12.0)]
    figures = result_copy.summarise(runs, [1024])
    relay = figures["results"]["1.0KiB"]["relay"]
    assert relay["round_ratios"] == [0.8, 1.0, 0.909]
    assert relay["ratio_to_upload_file"] == figures["relay_ratio_to_upload_file"] == 0.909
    assert figures["results"]["1.0KiB"]["naive"]["ratio_to_upload_file"] == 0.5


def test_aws_costs_counts_the_calls_of_every_kind_of_job_and_prices_them() -> None:
    figures = aws_costs.main(["--jobs", "1"])
    for kind in ("normal", "lost_callback", "duplicate_callbacks"):
        calls = figures[kind]["calls"]
        assert calls.get("sns.Publish") == 1, (kind, calls)  # one event, whatever the callbacks did
        assert calls.get("s3.PutObject", 0) + calls.get("s3.UploadPart", 0) >= 1, (kind, calls)
        assert figures[kind]["usd_per_1000_jobs"] > 0
    assert figures["duplicate_callbacks"]["invocations"]["api"] == 6  # the submit and five callbacks
    assert figures["lost_callback"]["invocations"].get("reconcile", 0) >= 1
    assert set(figures) >= {"calls_per_job", "minimum_calls_per_job", "ratio_to_minimum", "usd_per_1000_jobs",
                            "log_bytes_per_job", "naive_usd_per_1000_jobs"}
