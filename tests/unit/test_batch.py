"""``submit --batch``'s pure parts: reading a JSON Lines file into lines and keys, and what it shows."""

from __future__ import annotations

import io
import json
from pathlib import Path

import click
import pytest
from rich.console import Console

from handlers.cli.batch import read_batch
from handlers.cli.batch_report import BarReport, LineResult, summary, summary_json

KITE = {"model": "seedance-2.0-text-to-video", "prompt": "a kite"}


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines))
    return path


def keys(path: Path, name: str = "shots") -> dict[int, str]:
    return {line.number: line.key for line in read_batch(path, name)}


def test_blank_lines_are_skipped_and_numbers_are_the_files(tmp_path: Path) -> None:
    """Line numbers count every line of the file, blank ones included, as an editor shows them."""
    path = write(tmp_path / "b.jsonl", json.dumps(KITE), "", "   ", json.dumps({**KITE, "prompt": "b"}))
    assert [line.number for line in read_batch(path, "shots")] == [1, 4]


def test_a_byte_order_mark_does_not_spoil_the_first_line(tmp_path: Path) -> None:
    """A file saved with a UTF-8 BOM still has a valid line 1."""
    path = tmp_path / "b.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(KITE).encode())
    assert read_batch(path, "shots")[0].problem is None


@pytest.mark.parametrize(("text", "code"), [
    ('{"model": ', "invalid_json"), ("[1, 2]", "invalid_type"), ('{"a": 1, "a": 2}', "invalid_json"),
    (json.dumps({**KITE, "metadata": [1]}), "invalid_type"), (json.dumps({**KITE, "image_urls": ["no.png"]}),
                                                              "invalid_file"),
])
def test_a_line_that_is_not_a_request_has_a_problem_and_no_key(tmp_path: Path, text: str, code: str) -> None:
    """Not JSON, not an object, a duplicate key, bad metadata, a missing local file: a code and a reason."""
    line = read_batch(write(tmp_path / "b.jsonl", text), "shots")[0]
    assert (line.code, line.key) == (code, "") and line.problem


def test_keys_follow_the_request_and_its_occurrence_not_the_line_number(tmp_path: Path) -> None:
    """Reformatting or moving a line keeps its key; the second of two identical lines has a key of its own."""
    one = keys(write(tmp_path / "one.jsonl", json.dumps(KITE), json.dumps(KITE)))
    two = keys(write(tmp_path / "two.jsonl", "", json.dumps(KITE, separators=(",", ":")),
                     json.dumps(dict(reversed(KITE.items())))))
    assert one[1] != one[2] and (two[2], two[3]) == (one[1], one[2])


def test_keys_are_the_batchs_own(tmp_path: Path) -> None:
    """Another batch name, or a changed local file under the same line, gives another key."""
    image = tmp_path / "a.png"
    image.write_bytes(b"first")
    path = write(tmp_path / "b.jsonl", json.dumps({**KITE, "image_urls": [str(image)]}))
    before = keys(path)
    image.write_bytes(b"second")
    assert keys(path) != before != keys(path, "other")
    assert before[1].startswith("batch:") and len(before[1]) == len("batch:") + 64


def test_a_file_with_no_requests_is_a_usage_error(tmp_path: Path) -> None:
    """An empty file (or only blank lines) stops before anything is sent."""
    with pytest.raises(click.BadParameter, match="holds no requests; a batch is one JSON request a line"):
        read_batch(write(tmp_path / "b.jsonl", "", " "), "shots")


def test_the_summary_counts_statuses_and_failures_by_code_and_adds_the_credits() -> None:
    """One row per line, then the counts (failures by code) and the credits used and estimated."""
    results = [LineResult(1, "published", job_id="job_a", estimated=11.12, used=11.12),
               LineResult(2, "failed", job_id="job_b", code="service_error", message="boom", estimated=11.12),
               LineResult(3, "invalid", code="invalid_json", message="not JSON"),
               LineResult(4, "refused", code="budget_exceeded", message="402 budget_exceeded: over")]
    lines = summary(results)
    assert lines[0].split() == ["LINE", "STATUS", "JOB", "USED", "ESTIMATED", "DETAIL"]
    assert lines[2].split() == ["2", "failed", "job_b", "-", "11.12", "service_error:", "boom"]
    assert lines[5:] == ["4 lines: 1 published, 3 failed (budget_exceeded 1, invalid_json 1, service_error 1)",
                         "credits: 11.12 used, 22.24 estimated"]
    totals = json.loads(summary_json(results)[-1])["summary"]
    assert totals["failed"] == 3 and totals["credits"] == {"used": 11.12, "estimated": 22.24}


def test_on_a_terminal_one_bar_counts_the_finished_lines() -> None:
    """The bar shows done/total and how the finished lines ended."""
    out = io.StringIO()
    report = BarReport(2, Console(file=out, force_terminal=True, width=100))
    report.finished(LineResult(1, "published"))
    report.finished(LineResult(2, "failed", code="service_error"))
    report.close()
    last = out.getvalue().rsplit("\r", 1)[-1]
    assert "lines" in last and "2/2" in last and "1 failed, 1 published" in last
