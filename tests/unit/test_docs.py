"""The documentation: generated pages are current, event schemas are right, hand-written pages cover every code."""

from __future__ import annotations

import copy
import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft7Validator, Draft202012Validator
from starlette.routing import Route

from handlers.api import create_app
from handlers.api.auth import ApiKeys
from handlers.api.dashboard import dashboard_routes
from handlers.api.openapi import openapi_document
from handlers.base.errors import DownloadFailed, InvalidRequest, ProviderRejected, Violation
from handlers.cli.docs import docs
from handlers.domain.events import EVENT_TYPES, build_event
from handlers.domain.jobs import Job, JobStatus, Outcome, Output, derive_job_id, request_fingerprint
from handlers.domain.lifecycle import MOVES, TERMINAL, Move, Step
from handlers.provider.evolink.task import TaskError
from handlers.tooling.docgen import BLOCKS, LIMITS_END, LIMITS_START, example_event, generate
from handlers.tooling.event_schemas import all_event_schemas, event_schema
from handlers.tooling.lifecycle_docs import lifecycle_page, states_block
from tests.conftest import FIXTURES, ROOT, load_fixture
from tests.support.fakes import FakeProvider, local_relay

DOCS = ROOT / "docs"
T0 = 1_800_000_000.0
REQUEST = {"model": "seedance-2.0-fast-reference-to-video", "prompt": "@image1 rides into the sunset",
           "image_urls": ["https://example.com/a.png"], "duration": 6}
CREATE_STATUSES = ("400", "401", "402", "403", "404", "413", "429", "500", "502", "503")


def _job(outcome: Outcome, *, request: dict[str, Any] | None = None, **changes: Any) -> Job:
    request = dict(REQUEST if request is None else request)
    fingerprint = request_fingerprint(request, {"order": 1})
    base = Job(id=derive_job_id("", f"key-{outcome}", fingerprint), request=request, fingerprint=fingerprint,
               created_at=T0, updated_at=T0 + 90, status=JobStatus.STORED, metadata={"order": 1},
               task_id="task-unified-1800000000-abcd1234", model=request.get("model"), outcome=outcome,
               finished_at=T0 + 90)
    return dataclasses.replace(base, **changes)


def _output(job_id: str) -> Output:
    key = f"jobs/{job_id}/output-0.mp4"
    return Output(uri=f"file:///srv/relay/blobs/{key}", key=key, size=1234, sha256="0f" * 32)


def _events() -> dict[str, dict[str, Any]]:
    """One event per outcome, with error objects made the way the use cases make them."""
    completed = _job(Outcome.COMPLETED)
    rejected = ProviderRejected("EvoLink 402 insufficient_quota: top up", status=402, code="insufficient_quota")
    jobs = {
        "completed": dataclasses.replace(completed, outputs=(_output(completed.id),)),
        "failed": _job(Outcome.FAILED, error=TaskError("content_policy_violation", "blocked", "task_error").as_dict()),
        "failed-copy": _job(Outcome.FAILED,
                            error=DownloadFailed("gone", permanent=True, code="result_expired").as_dict()),
        "cancelled": _job(Outcome.CANCELLED, error=TaskError("request_cancelled", "cancelled").as_dict()),
        "expired": _job(Outcome.EXPIRED, task_id=None, error={"code": "expired", "message": "no final answer in time"}),
        "rejected": _job(Outcome.REJECTED, task_id=None, error={**rejected.as_dict(), "provider_code": rejected.code}),
        "rejected-invalid": _job(
            Outcome.REJECTED, request={"prompt": "", "duration": "5"}, task_id=None,
            error=InvalidRequest([Violation("model", "required", "model is required")]).as_dict()),
    }
    return {name: build_event(job, now=T0 + 91) for name, job in jobs.items()}


def _validator(event_type: str) -> Draft202012Validator:
    return Draft202012Validator(event_schema(event_type), format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_the_generated_files_in_the_repository_are_up_to_date() -> None:
    assert generate(ROOT, check=True) == [], "run `seedance-relay docs generate`"


def _hand_written_pages(root: Path) -> None:
    """Copy the hand-written pages that hold generated blocks (README.md, docs/evolink.md) under ``root``."""
    for block in BLOCKS:
        (root / block.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / block.path, root / block.path)


def test_generate_writes_what_check_reports_and_removes_schemas_of_unknown_types(tmp_path: Path) -> None:
    (tmp_path / "docs" / "schemas").mkdir(parents=True)
    _hand_written_pages(tmp_path)
    (tmp_path / "docs" / "schemas" / "io.seedance-relay.job.retired.json").write_text("{}")
    stale = generate(tmp_path, check=True)
    assert "docs/api.md" in stale and "docs/schemas/io.seedance-relay.job.retired.json" in stale
    assert not (tmp_path / "docs" / "api.md").exists()
    assert generate(tmp_path, check=False) == stale
    assert generate(tmp_path, check=True) == []
    assert not (tmp_path / "docs" / "schemas" / "io.seedance-relay.job.retired.json").exists()


def test_generate_refuses_an_evolink_page_without_the_limits_markers(tmp_path: Path) -> None:
    _hand_written_pages(tmp_path)
    (tmp_path / "docs" / "evolink.md").write_text("# EvoLink\n")
    with pytest.raises(ValueError, match="limits:start"):
        generate(tmp_path, check=True)


def test_generate_refuses_a_readme_without_the_states_markers(tmp_path: Path) -> None:
    _hand_written_pages(tmp_path)
    (tmp_path / "README.md").write_text("# seedance-relay\n\n### Job states\n")
    with pytest.raises(ValueError, match=r"README\.md needs <!-- states:start -->"):
        generate(tmp_path, check=True)


def test_the_cli_names_a_missing_readme_instead_of_failing_with_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    shutil.copy(DOCS / "evolink.md", tmp_path / "docs" / "evolink.md")
    result = CliRunner().invoke(docs, ["generate", "--check", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "no README.md under" in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit)


def test_the_cli_check_exits_1_when_stale_and_0_when_current(tmp_path: Path) -> None:
    _hand_written_pages(tmp_path)
    runner = CliRunner()
    stale = runner.invoke(docs, ["generate", "--check", "--root", str(tmp_path)])
    assert stale.exit_code == 1 and "docs/events.md" in stale.output
    assert runner.invoke(docs, ["generate", "--root", str(tmp_path)]).exit_code == 0
    assert runner.invoke(docs, ["generate", "--check", "--root", str(tmp_path)]).exit_code == 0


def test_every_path_and_method_of_the_openapi_document_is_in_the_api_reference() -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    for path, item in openapi_document()["paths"].items():
        for method in item:
            assert f"## `{method.upper()} {path}`" in text


def _served_operations(tmp_path: Path) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route the relay serves as ``serve`` wires it (dashboard included)."""
    relay = local_relay(tmp_path, FakeProvider())
    try:
        keys = ApiKeys(["key-1"])
        app = create_app(relay, keys, extra_routes=dashboard_routes(relay, keys))
        return {(method, re.sub(r":\w+}", "}", route.path)) for route in app.routes if isinstance(route, Route)
                for method in route.methods or () if method != "HEAD"}
    finally:
        relay.close()


def test_the_openapi_document_lists_every_route_the_relay_serves(tmp_path: Path) -> None:
    documented = {(method.upper(), path) for path, item in openapi_document()["paths"].items() for method in item}
    page_support = {("GET", "/docs/reference.js"), ("GET", "/docs/openapi-3.0.json")}  # parts of the /docs page
    assert _served_operations(tmp_path) - page_support == documented


def test_every_route_the_readme_lists_is_in_the_openapi_document() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(GET|POST|PUT|DELETE) (/[^`?]*)", readme, re.MULTILINE))
    documented = {(method.upper(), re.sub(r"{\w+}", "{}", path))
                  for path, item in openapi_document()["paths"].items() for method in item}
    assert listed and {(method, re.sub(r"{\w+}", "{}", path)) for method, path in listed} <= documented


def test_the_limits_table_sits_between_its_markers() -> None:
    page = (DOCS / "evolink.md").read_text(encoding="utf-8")
    block = page[page.index(LIMITS_START):page.index(LIMITS_END)]
    assert "seedance-2.0-fast-reference-to-video" in block and "2,086,876" in block


def _states_block(readme: str) -> str:
    return readme[readme.index("<!-- states:start -->"):readme.index("<!-- states:end -->")]


def test_the_readme_diagram_draws_every_move_that_changes_the_status_and_ends_at_the_final_ones() -> None:
    block = _states_block((ROOT / "README.md").read_text(encoding="utf-8"))
    edges = {(source, move.target) for move in MOVES if move.target for source in move.sources}
    drawn = set(re.findall(r"^    (\w+) --> (\w+):", block, re.MULTILINE))
    assert drawn == {(source.value, target.value) for source, target in edges}
    assert set(re.findall(r"^    (\w+) --> \[\*\]$", block, re.MULTILINE)) == {s.value for s in TERMINAL}


def test_the_lifecycle_page_has_one_row_per_move_of_the_table() -> None:
    page = (DOCS / "lifecycle.md").read_text(encoding="utf-8")
    moves = page[page.index("## Moves"):page.index("## Outcomes")]
    rows = re.findall(r"^\| `(\w+)` \| `[a-z]", moves, re.MULTILINE)
    assert rows == [move.step.value for move in MOVES]
    assert all(move.trigger in moves for move in MOVES)


def test_docs_drawn_from_another_lifecycle_table_fail_the_check(tmp_path: Path) -> None:
    _hand_written_pages(tmp_path)
    generate(tmp_path, check=False)
    retry = Move(Step.PROGRESSED, frozenset({JobStatus.PROCESSING}), JobStatus.SUBMITTED, "EvoLink retries the task")
    changed = (*MOVES, retry)
    states = next(block for block in BLOCKS if block.name == "states")
    readme = tmp_path / "README.md"
    readme.write_text(dataclasses.replace(states, render=lambda: states_block(changed)).fill(readme.read_text()))
    (tmp_path / "docs" / "lifecycle.md").write_text(lifecycle_page(changed))
    assert "processing --> submitted: progressed" in readme.read_text()
    assert generate(tmp_path, check=True) == ["README.md", "docs/lifecycle.md"]
    result = CliRunner().invoke(docs, ["generate", "--check", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "README.md" in result.output and "docs/lifecycle.md" in result.output


def test_the_readme_status_table_explains_every_status() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Job states"):readme.index("### Events")]
    assert set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)) == {status.value for status in JobStatus}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_event_schema_is_a_valid_draft_2020_12_schema(event_type: str) -> None:
    schema = event_schema(event_type)
    Draft202012Validator.check_schema(schema)
    assert schema["properties"]["type"]["const"] == event_type


def test_there_is_one_schema_per_event_type_and_unknown_types_are_refused() -> None:
    assert list(all_event_schemas()) == list(EVENT_TYPES)
    with pytest.raises(ValueError, match="unknown event type"):
        event_schema("io.seedance-relay.job.retired")


@pytest.mark.parametrize(("name", "event"), _events().items())
def test_a_real_event_validates_against_its_schema_and_the_cloudevents_schema(name: str, event: dict[str, Any]) -> None:
    _validator(event["type"]).validate(event)
    Draft7Validator(load_fixture("cloudevents/cloudevents-1.0.schema.json")).validate(event)


@pytest.mark.parametrize("outcome", [t.rsplit(".", 1)[1] for t in EVENT_TYPES])
def test_the_documented_example_events_validate(outcome: str) -> None:
    event = example_event(outcome)
    _validator(event["type"]).validate(event)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_an_event_of_another_type_fails_the_schema(event_type: str) -> None:
    other = next(e for e in _events().values() if e["type"] != event_type)
    assert not _validator(event_type).is_valid(other)


@pytest.mark.parametrize("name", ["completed", "failed", "rejected"])
def test_an_event_missing_any_data_field_fails_its_schema(name: str) -> None:
    event = _events()[name]
    for field in event["data"]:
        broken = copy.deepcopy(event)
        del broken["data"][field]
        assert not _validator(event["type"]).is_valid(broken), field


@pytest.mark.parametrize(("name", "path", "value"), [
    ("completed", ("data", "outputs"), []),
    ("completed", ("data", "error"), {"code": "x", "message": ""}),
    ("failed", ("data", "outcome"), "completed"),
    ("failed", ("data", "extra"), 1),
    ("completed", ("time",), "yesterday"),
    ("completed", ("specversion",), "0.3"),
    ("completed", ("wrongattribute",), "x"),
])
def test_an_event_with_a_wrong_value_fails_its_schema(name: str, path: tuple[str, ...], value: object) -> None:
    event = _events()[name]
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert not _validator(event["type"]).is_valid(event)


def _evolink_task_error_codes() -> list[str]:
    """The first column of every "Error Code" table in EvoLink's error-code page."""
    codes: list[str] = []
    in_table = False
    for line in (FIXTURES / "evolink" / "task-management__error-codes.mdx").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if cells and cells[0] == "Error Code":
            in_table = True
        elif not cells:
            in_table = False
        elif in_table and (match := re.fullmatch(r"`([a-z_]+)`", cells[0])):
            codes.append(match.group(1))
    return codes


def test_the_error_code_fixture_parses_to_its_thirteen_codes() -> None:
    codes = _evolink_task_error_codes()
    assert len(codes) == len(set(codes)) == 13 and "unknown_error" in codes


@pytest.mark.parametrize("code", _evolink_task_error_codes())
def test_every_evolink_task_error_code_is_in_the_troubleshooting_table(code: str) -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    assert re.search(rf"^\| `{code}` \|", text, re.MULTILINE), code


@pytest.mark.parametrize("status", CREATE_STATUSES)
def test_every_http_status_of_evolinks_create_is_in_the_troubleshooting_table(status: str) -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    assert re.search(rf"^\| `{status}`", text, re.MULTILINE), status


def _anchors(markdown: str) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.DOTALL), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", ["api.md", "events.md", "consumers.md", "evolink.md", "lifecycle.md",
                                  "troubleshooting.md"])
def test_relative_links_point_at_files_and_headings_that_exist(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (DOCS / file).resolve() if file else DOCS / page
        assert path.exists(), target
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path.read_text(encoding="utf-8")), target
