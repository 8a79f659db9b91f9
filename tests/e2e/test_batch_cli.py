"""``submit --batch FILE.jsonl``: one job per line against a running relay and the sandbox, over real sockets.

Bad lines are reported with their number and the others still run; running the same file again submits nothing
twice; ``--wait`` ends with a summary of published and failed lines (with their codes) and the credits;
``--concurrency`` bounds the lines in flight.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from handlers.sandbox.media import render_image
from tests.support.cli import relay_cli
from tests.support.logs import rendered_logs
from tests.support.tenants import JOB_CREDITS, REQUEST, TenantStack, max_overlap, tenant_stack

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).with_name("seedance-relay"))
T2V = {"model": "seedance-2.0-text-to-video", "duration": 4, "quality": "480p"}
JOB_CREDITS_T2V = JOB_CREDITS  # 4 s of 480p costs the same with a reference image or without


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[TenantStack]:
    with tenant_stack("local", tmp_path) as running:
        yield running


def batch_file(path: Path, *lines: dict[str, Any] | str) -> Path:
    """A JSON Lines file: dicts as JSON, strings as they are."""
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def run(stack: TenantStack, *args: str, tenant: str = "acme") -> Result:
    return relay_cli(stack.url, stack.key_of(tenant), "submit", *args)


def json_results(result: Result) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """``--json`` output: each line's result by line number, and the summary."""
    *lines, summary = [json.loads(text) for text in result.stdout.splitlines()]
    return {line["line"]: line for line in lines}, summary["summary"]


def kite(n: int) -> dict[str, Any]:
    return {**T2V, "prompt": f"kite {n}"}


def test_a_bad_line_is_reported_with_its_number_and_the_others_still_run(stack: TenantStack, tmp_path: Path) -> None:
    """Not JSON (line 2), a missing local file (line 4): each named by line on stderr and in the table; lines 1, 3
    and 5 are submitted; exit 1."""
    path = batch_file(tmp_path / "shots.jsonl", kite(1), '{"model": "seedance-2.0-text-to-video",', kite(3),
                      {**REQUEST, "image_urls": [str(tmp_path / "missing.png")]}, kite(5))
    result = run(stack, "--batch", str(path))
    assert result.exit_code == 1, result.output
    assert "line 2: invalid: invalid_json: the body is not valid JSON" in result.stderr
    assert f"line 4: invalid: invalid_file: image_urls: '{tmp_path / 'missing.png'}' is neither a URL nor a " \
           "readable file" in result.stderr
    rows = [row.split()[:3] for row in result.stdout.splitlines()[1:6]]
    assert [row[:2] for row in rows] == [["1", "submitted"], ["2", "invalid"], ["3", "submitted"], ["4", "invalid"],
                                         ["5", "submitted"]]
    assert "5 lines: 3 submitted, 2 failed (invalid_file 1, invalid_json 1)" in result.stdout
    listed = stack.api("acme").get("/v1/jobs").json()["jobs"]
    assert {job["id"] for job in listed} == {rows[0][2], rows[2][2], rows[4][2]}


@pytest.mark.parametrize("backend", ["local", pytest.param("aws", marks=pytest.mark.integration)])
def test_running_the_same_file_again_submits_nothing_twice(backend: str, tmp_path: Path,
                                                           request: pytest.FixtureRequest) -> None:
    """The second run of a file (URL lines, a line with a local image, two identical lines) answers the same job
    for every line, and the sandbox gets no new task. The image line's upload URL is new, so the relay answers it
    409 idempotency_key_reused, and its job is found by its key."""
    moto = str(request.getfixturevalue("moto_server")) if backend == "aws" else None
    image = tmp_path / "first.png"
    image.write_bytes(render_image(width=640, height=480))
    path = batch_file(tmp_path / "shots.jsonl", kite(1), kite(2), kite(2), {**REQUEST, "image_urls": [str(image)]})
    with tenant_stack(backend, tmp_path / "stack", moto=moto) as stack:
        first = run(stack, "--batch", str(path), "--wait", "--json")
        tasks = len(stack.sandbox_tasks())
        with rendered_logs("info") as logs:
            second = run(stack, "--batch", str(path), "--wait", "--json")
        assert len(stack.sandbox_tasks()) == tasks == 4
    (before, _), (after, summary) = json_results(first), json_results(second)
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert {n: r["job_id"] for n, r in after.items()} == {n: r["job_id"] for n, r in before.items()}
    assert len({r["job_id"] for r in before.values()}) == 4  # identical lines are separate jobs
    assert summary["statuses"] == {"published": 4}
    answers = [json.loads(line) for line in logs.getvalue().splitlines() if '"api.request"' in line]
    assert [a["status"] for a in answers if a["route"] == "/v1/jobs" and a["method"] == "POST"].count(409) == 1


def test_adding_and_moving_lines_submits_only_the_new_line(stack: TenantStack, tmp_path: Path) -> None:
    """Keys follow each line's request, not its place: a reordered file with one line more makes one new job."""
    path = batch_file(tmp_path / "shots.jsonl", kite(1), kite(2))
    before, _ = json_results(run(stack, "--batch", str(path), "--json"))
    batch_file(path, kite(3), kite(2), kite(1))
    after, _ = json_results(run(stack, "--batch", str(path), "--json"))
    assert after[3]["job_id"] == before[1]["job_id"] and after[2]["job_id"] == before[2]["job_id"]
    assert after[1]["job_id"] not in {r["job_id"] for r in before.values()}
    assert len(stack.api("acme").get("/v1/jobs").json()["jobs"]) == 3


def test_a_named_batch_is_the_same_batch_from_another_path(stack: TenantStack, tmp_path: Path) -> None:
    """--idempotency-key names the batch: a copy of the file elsewhere finds the same jobs; a new name submits anew."""
    first = batch_file(tmp_path / "a.jsonl", kite(1))
    copy = batch_file(tmp_path / "b.jsonl", kite(1))
    named, _ = json_results(run(stack, "--batch", str(first), "--idempotency-key", "spring", "--json"))
    again, _ = json_results(run(stack, "--batch", str(copy), "--idempotency-key", "spring", "--json"))
    renamed, _ = json_results(run(stack, "--batch", str(copy), "--idempotency-key", "summer", "--json"))
    assert again[1]["job_id"] == named[1]["job_id"] != renamed[1]["job_id"]


def test_refusals_of_the_relay_are_failed_lines_with_their_codes(tmp_path: Path) -> None:
    """A budget that holds one job: line 2 is 402 budget_exceeded; line 3 breaks a rule (400 invalid_request);
    line 1 runs; the table names each code and the exit code is 1."""
    with tenant_stack("local", tmp_path, tenants=("small",), relay_env={"RELAY_BUDGETS": "small=15/day"}) as stack:
        path = batch_file(tmp_path / "shots.jsonl", REQUEST, {**REQUEST, "prompt": "image 1 again"},
                          {**REQUEST, "duration": 40})
        result = run(stack, "--batch", str(path), "--concurrency", "1", "--json", tenant="small")
    lines, summary = json_results(result)
    assert result.exit_code == 1, result.output
    assert [(r["status"], r["code"]) for r in lines.values()] == [
        ("submitted", None), ("refused", "budget_exceeded"), ("refused", "invalid_request")]
    assert "duration" in lines[3]["message"] and summary["codes"] == {"budget_exceeded": 1, "invalid_request": 1}


def test_wait_summarises_published_and_failed_lines_with_codes_and_credits(tmp_path: Path) -> None:
    """With the sandbox failing some tasks, --wait ends with a row per line, the counts, failures by code, and the
    credits used by the published lines; exit 1."""
    with tenant_stack("local", tmp_path, fail_rate=0.5, seed=7, fail_code="content_policy_violation") as stack:
        path = batch_file(tmp_path / "shots.jsonl", *(kite(n) for n in range(1, 5)))
        result = run(stack, "--batch", str(path), "--wait", "--concurrency", "1")
    table = result.stdout.splitlines()
    rows = [row.split() for row in table[1:5]]
    published = [row for row in rows if row[1] == "published"]
    failed = [row for row in rows if row[1] == "failed"]
    assert published and failed, f"seed 7 should fail some of the four tasks, not all: {result.stdout}"
    assert result.exit_code == 1
    assert table[0].split() == ["LINE", "STATUS", "JOB", "USED", "ESTIMATED", "DETAIL"]
    assert all(row[5].startswith("content_policy_violation") for row in failed)
    assert table[5] == f"4 lines: {len(published)} published, {len(failed)} failed " \
                       f"(content_policy_violation {len(failed)})"
    assert table[6] == f"credits: {round(len(published) * JOB_CREDITS_T2V, 2):g} used, " \
                       f"{round(4 * JOB_CREDITS_T2V, 2):g} estimated"


def test_without_wait_each_line_is_reported_as_submitted(stack: TenantStack, tmp_path: Path) -> None:
    """Without --wait, the plain progress (not a terminal) names each line's job as accepted, and exit is 0."""
    path = batch_file(tmp_path / "shots.jsonl", kite(1), kite(2))
    result = run(stack, "--batch", str(path))
    lines, _ = json_results(run(stack, "--batch", str(path), "--json"))
    assert result.exit_code == 0, result.output
    for number in (1, 2):
        assert f"line {number}: {lines[number]['job_id']} submitted" in result.stderr
    assert "2 lines: 2 submitted" in result.stdout


def test_concurrency_bounds_the_lines_in_flight(tmp_path: Path) -> None:
    """--wait --concurrency 2 over five lines: the sandbox never runs more than two of their tasks at once."""
    with tenant_stack("local", tmp_path, speed=100.0) as stack:
        path = batch_file(tmp_path / "shots.jsonl", *(kite(n) for n in range(1, 6)))
        result = run(stack, "--batch", str(path), "--wait", "--concurrency", "2")
        tasks = stack.sandbox_tasks()
    assert result.exit_code == 0, result.output
    assert len(tasks) == 5 and max_overlap([(t["created"], t["finished"]) for t in tasks]) == 2


@pytest.mark.parametrize(("args", "says"), [
    (("--concurrency", "0"), "Invalid value for '--concurrency': 0 is not in the range 1<=x<=32"),
    (("--concurrency", "33"), "Invalid value for '--concurrency': 33 is not in the range 1<=x<=32"),
    (("--concurrency", "many"), "Invalid value for '--concurrency': 'many' is not a valid integer"),
])
def test_a_concurrency_out_of_range_is_a_usage_error(stack: TenantStack, tmp_path: Path, args: tuple[str, ...],
                                                     says: str) -> None:
    """--concurrency takes 1 to 32: anything else exits 2 naming the flag and the range, and submits nothing."""
    result = run(stack, "--batch", str(batch_file(tmp_path / "shots.jsonl", kite(1))), *args)
    assert result.exit_code == 2 and says in result.stderr and "Traceback" not in result.output
    assert stack.api("acme").get("/v1/jobs").json()["jobs"] == []


@pytest.mark.parametrize(("args", "says"), [
    (("--concurrency", "2", "--prompt", "x"), "--concurrency applies to --batch only"),
    (("--batch", "{file}", "--prompt", "x", "--image", "a.png"),
     "--batch takes every request from its lines; leave out --prompt, --image"),
    (("--batch", "{empty}"), "holds no requests; a batch is one JSON request a line"),
])
def test_flags_that_do_not_fit_a_batch_are_usage_errors(stack: TenantStack, tmp_path: Path, args: tuple[str, ...],
                                                        says: str) -> None:
    """A batch takes no single-job flags, --concurrency takes a batch, and an empty file has nothing to run."""
    files = {"{file}": str(batch_file(tmp_path / "shots.jsonl", kite(1))),
             "{empty}": str(batch_file(tmp_path / "empty.jsonl", "", "  "))}
    result = run(stack, *(files.get(arg, arg) for arg in args))
    assert result.exit_code == 2 and says in result.stderr and "Traceback" not in result.output


def test_estimate_prints_each_line_and_the_sum_and_submits_nothing(stack: TenantStack, tmp_path: Path) -> None:
    """--estimate --batch: each line's credits from POST /v1/estimates and their total; no job is made."""
    path = batch_file(tmp_path / "shots.jsonl", kite(1), {**T2V, "prompt": "long", "duration": 8}, "[1]")
    result = run(stack, "--batch", str(path), "--estimate")
    table = result.stdout.splitlines()
    four, eight = JOB_CREDITS, round(JOB_CREDITS * 2, 2)
    assert result.exit_code == 1, result.output  # line 3 is not a request
    assert [row.split()[:2] for row in table[1:4]] == [["1", f"{four:g}"], ["2", f"{eight:g}"], ["3", "-"]]
    assert table[4] == f"total: {four + eight:g} credits for 2 lines (estimate; nothing was submitted); " \
                       "1 failed (invalid_type 1)"
    assert stack.api("acme").get("/v1/jobs").json()["jobs"] == []


def test_ctrl_c_stops_following_at_once_and_sends_no_more_lines(tmp_path: Path) -> None:
    """SIGINT while --wait follows line 1 (a task of about a minute): the command ends within seconds with 130,
    its summary shows line 1 as sent and lines 2 and 3 as not sent, and the sandbox got one task."""
    with tenant_stack("local", tmp_path, speed=1.0) as stack:
        path = batch_file(tmp_path / "shots.jsonl", *(kite(n) for n in range(1, 4)))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "EVOLINK_", "SANDBOX_"))},
               "RELAY_URL": stack.url, "RELAY_API_KEY": stack.key_of("acme")}
        proc = subprocess.Popen([EXE, "submit", "--batch", str(path), "--wait", "--concurrency", "1"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        first = proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - started < 5 and proc.returncode == 130, first + err
        assert len(stack.sandbox_tasks()) == 1
    assert first.startswith("line 1: job_") and first.rstrip().endswith(" submitted")
    assert [row.split()[:2] for row in out.splitlines()[1:4]] == [["1", "submitted"], ["2", "not_sent"],
                                                                  ["3", "not_sent"]]
    assert "interrupted: the lines sent so far keep running" in err and "Traceback" not in err
