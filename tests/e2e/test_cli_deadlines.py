"""``cancel_after`` from the command line: ``submit --cancel-after``, a request file's or a batch line's
``cancel_after`` sent with the job, and ``validate`` checking it as ``POST /v1/jobs`` does; against a running relay
and the sandbox over real sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from handlers.cli import main
from handlers.domain.jobs import Job
from tests.support.cli import relay_cli
from tests.support.tenants import TenantStack, tenant_stack

pytestmark = pytest.mark.e2e
KITE: dict[str, Any] = {"model": "seedance-2.0-text-to-video", "prompt": "a kite", "duration": 4, "quality": "480p"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenantStack]:
    with tenant_stack("local", tmp_path_factory.mktemp("stack")) as running:
        yield running


def submit(stack: TenantStack, *args: str) -> Result:
    return relay_cli(stack.url, stack.key_of("acme"), "submit", *args)


def write(path: Path, *requests: dict[str, Any]) -> Path:
    path.write_text("\n".join(json.dumps(request) for request in requests))
    return path


def stored(stack: TenantStack, job_id: str) -> Job:
    assert stack.runtime is not None and stack.runtime.relay is not None
    return stack.runtime.relay.jobs.get(job_id)


def deadline(stack: TenantStack, job_id: str) -> float | None:
    """Seconds from the job's creation to its deadline (``None``: it has none)."""
    job = stored(stack, job_id)
    return None if job.deadline_at is None else round(job.deadline_at - job.created_at, 3)


def submitted_id(result: Result) -> str:
    assert result.exit_code == 0, result.output
    job_id: str = json.loads(result.stdout.splitlines()[-1])["id"]
    return job_id


def test_the_cancel_after_flag_gives_the_job_a_deadline(stack: TenantStack) -> None:
    result = submit(stack, "--model", KITE["model"], "--prompt", "a flag's deadline", "--duration", "4",
                    "--cancel-after", "600", "--json")
    assert deadline(stack, submitted_id(result)) == 600


def test_a_request_files_cancel_after_is_sent_and_the_flag_wins_over_it(stack: TenantStack, tmp_path: Path) -> None:
    path = write(tmp_path / "job.json", {**KITE, "prompt": "a file's deadline", "cancel_after": 900})
    from_file = submitted_id(submit(stack, str(path), "--json"))
    from_flag = submitted_id(submit(stack, str(path), "--prompt", "the flag's deadline", "--cancel-after", "60",
                                    "--json"))
    assert (deadline(stack, from_file), deadline(stack, from_flag)) == (900, 60)


@pytest.mark.parametrize(("value", "says"), [
    ("0", "Invalid value for '--cancel-after': 0 is not in the range 1<=x<=604800"),
    ("604801", "Invalid value for '--cancel-after': 604801 is not in the range 1<=x<=604800"),
    ("1h", "Invalid value for '--cancel-after': '1h' is not a valid integer"),
])
def test_a_cancel_after_flag_out_of_range_is_a_usage_error(stack: TenantStack, value: str, says: str) -> None:
    """--cancel-after takes whole seconds from 1 to a week: anything else exits 2 naming the flag and the range."""
    result = submit(stack, "--model", KITE["model"], "--prompt", f"refused {value}", "--cancel-after", value)
    assert result.exit_code == 2 and says in result.stderr and "Traceback" not in result.output


def test_a_request_file_with_a_bad_cancel_after_is_refused_before_anything_is_sent(
        stack: TenantStack, tmp_path: Path) -> None:
    path = write(tmp_path / "job.json", {**KITE, "prompt": "a bad file deadline", "cancel_after": "1h"})
    before = len(stack.sandbox_tasks())
    result = submit(stack, str(path))
    assert result.exit_code == 2 and "cancel_after must be a whole number of seconds" in result.stderr
    assert len(stack.sandbox_tasks()) == before


def test_a_batch_lines_cancel_after_is_sent_and_a_bad_one_is_that_lines_problem(
        stack: TenantStack, tmp_path: Path) -> None:
    """Line 1's deadline reaches its job; line 2's is out of range, so line 2 alone is invalid, naming it."""
    path = write(tmp_path / "shots.jsonl", {**KITE, "prompt": "line one", "cancel_after": 120},
                 {**KITE, "prompt": "line two", "cancel_after": 0})
    result = submit(stack, "--batch", str(path), "--json")
    *lines, _ = [json.loads(text) for text in result.stdout.splitlines()]
    first, second = sorted(lines, key=lambda line: line["line"])
    assert result.exit_code == 1, result.output
    assert deadline(stack, first["job_id"]) == 120
    assert (second["status"], second["code"]) == ("invalid", "out_of_range")
    assert "line 2: invalid: out_of_range: cancel_after: cancel_after must be from 1 to 604800 seconds" in \
        result.stderr


def test_a_batch_takes_no_cancel_after_flag(stack: TenantStack, tmp_path: Path) -> None:
    result = submit(stack, "--batch", str(write(tmp_path / "shots.jsonl", KITE)), "--cancel-after", "60")
    assert result.exit_code == 2
    assert "--batch takes every request from its lines; leave out --cancel-after" in result.stderr


@pytest.mark.parametrize(("cancel_after", "code", "errors"), [
    (3600, 0, []),
    (0, 1, [("cancel_after", "out_of_range")]),
    ("soon", 1, [("cancel_after", "invalid_type")]),
])
def test_validate_checks_cancel_after_as_post_v1_jobs_does(tmp_path: Path, cancel_after: object, code: int,
                                                           errors: list[tuple[str, str]]) -> None:
    path = write(tmp_path / "job.json", {**KITE, "cancel_after": cancel_after})
    result = CliRunner().invoke(main, ["validate", str(path)])
    report = json.loads(result.stdout)
    assert result.exit_code == code
    assert [(e["field"], e["code"]) for e in report["errors"]] == errors
