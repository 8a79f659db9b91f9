"""RelayMetrics and the EMF buffer on their own: what each figure becomes, and what loads when."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from handlers.app.emf import EmfBuffer
from handlers.app.metrics import CALLBACK_ROUTE, RelayMetrics
from tests.conftest import ROOT


def emf_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def test_the_lambda_entries_load_neither_powertools_nor_prometheus_client_at_import() -> None:
    probe = ("import sys, handlers.lambdas.ingest, handlers.lambdas.submit, handlers.lambdas.reconcile, "
             "handlers.lambdas.api; print(sorted(m for m in ('aws_lambda_powertools', 'prometheus_client') "
             "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_callback_route_status_decides_accepted_or_refused_and_the_reason() -> None:
    metrics = RelayMetrics()
    for status in (202, 202, 401, 413, 400, 503):
        metrics.observe_request("POST", CALLBACK_ROUTE, status, 0.001)
    metrics.observe_request("POST", "/v1/jobs", 401, 0.001)
    value = metrics.registry.get_sample_value
    assert value("relay_callbacks_total", {"result": "accepted", "reason": "ok"}) == 2
    for reason in ("unauthorized", "too_large", "invalid_body", "http_503"):
        assert value("relay_callbacks_total", {"result": "refused", "reason": reason}) == 1


def test_counts_are_summed_and_timings_kept_one_line_per_set_of_labels(capsys: pytest.CaptureFixture[str]) -> None:
    buffer = EmfBuffer(namespace="Test", service="svc")
    metrics = RelayMetrics(sink=buffer)
    for seconds in (0.1, 0.2, 0.3):
        metrics.provider_call("get_task", "ok", seconds)
    assert buffer.flush() == 1
    [line] = emf_lines(capsys.readouterr().out)
    assert line["ProviderCalls"] == [3.0] and line["ProviderLatency"] == pytest.approx([100.0, 200.0, 300.0])
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"], ["service", "operation"]]  # type: ignore[index]
    assert (line["service"], line["operation"]) == ("svc", "get_task")


def test_a_flush_with_nothing_recorded_writes_nothing_and_a_second_flush_starts_over(
        capsys: pytest.CaptureFixture[str]) -> None:
    buffer = EmfBuffer()
    assert buffer.flush() == 0
    RelayMetrics(sink=buffer).ingest_attempt("done")
    assert buffer.flush() == 1 and buffer.flush() == 0
    assert len(emf_lines(capsys.readouterr().out)) == 1


def test_label_sets_that_agree_share_one_emf_line_and_those_that_differ_do_not(
        capsys: pytest.CaptureFixture[str]) -> None:
    buffer = EmfBuffer(namespace="Test", service="svc")
    metrics = RelayMetrics(sink=buffer)
    metrics.observe_request("POST", "/v1/jobs", 202, 0.05)
    metrics.provider_call("create_task", "ok", 0.02)
    metrics.provider_call("get_task", "ok", 0.01)
    assert buffer.flush() == 4
    lines = emf_lines(capsys.readouterr().out)
    assert len(lines) == 2  # the two provider operations cannot share a line: `operation` differs
    for line in lines:
        for directive in line["_aws"]["CloudWatchMetrics"]:  # type: ignore[index]
            for group in directive["Dimensions"]:
                assert all(isinstance(line[name], str) for name in group)
            assert all(name["Name"] in line for name in directive["Metrics"])
    merged = next(line for line in lines if "HttpRequests" in line)
    assert (merged["route"], merged["status_class"], merged["HttpLatency"]) == ("/v1/jobs", "2xx", [50.0])
    assert sorted(line["operation"] for line in lines) == ["create_task", "get_task"]
    assert sum(line.get("ProviderCalls", [0])[0] for line in lines) == 2  # type: ignore[index]
