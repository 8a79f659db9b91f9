"""The pure parts of references and storyboards: the job:// form, the storyboard body, which shots a rerun
replaces, and shot:// turned into job://."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.base.errors import InvalidRequest
from handlers.domain.contract import IMAGE, VIDEO
from handlers.domain.storyboards import affected_shots, parse_storyboard, storyboard_id, to_job_references
from handlers.provider.validation import validate_request
from handlers.provider.validation_urls import check_job_reference, parse_job_reference

JOB = "job_0123456789abcdef0123456789"
T2V = {"model": "seedance-2.0-text-to-video", "prompt": "a lighthouse"}


def shot(shot_id: str, *names: str) -> dict[str, Any]:
    return {"id": shot_id, "request": {**T2V, "video_urls": [f"shot://{n}/output-0" for n in names]}}


@pytest.mark.parametrize(("url", "part", "index"), [
    (f"job://{JOB}/output-0", "output-0", 0), (f"job://{JOB}/output-2", "output-2", 2),
    (f"job://{JOB}/poster", "poster", 0), (f"JOB://{JOB}/last-frame", "last-frame", 0)])
def test_a_job_reference_names_a_job_and_a_part(url: str, part: str, index: int) -> None:
    reference = parse_job_reference(url)
    assert reference is not None and (reference.job_id, reference.part, reference.output_index) == (JOB, part, index)


@pytest.mark.parametrize("url", [f"job://{JOB}", f"job://{JOB}/output-01", "job://job_x/output-0",
                                 f"job://{JOB}/thumbnail", f"job://{JOB}/output-0/extra"])
def test_a_malformed_job_reference_is_refused_saying_the_form(url: str) -> None:
    [violation] = check_job_reference(url, "video_urls[0]", VIDEO)
    assert violation.code == "invalid_reference" and "job://JOB_ID/PART" in violation.message


def test_a_picture_must_be_in_image_urls_and_a_video_in_video_urls() -> None:
    assert check_job_reference(f"job://{JOB}/poster", "image_urls[0]", IMAGE) == []
    [wrong] = check_job_reference(f"job://{JOB}/output-0", "image_urls[0]", IMAGE)
    assert "output-0, which is not an image" in wrong.message


def test_job_references_are_refused_unless_the_caller_resolves_them() -> None:
    body = {**T2V, "model": "seedance-2.0-reference-to-video", "video_urls": [f"job://{JOB}/output-0"]}
    assert [v.code for v in validate_request(body)] == ["insecure_url"]
    assert validate_request(body, references=True) == []


def test_a_storyboard_names_every_problem_of_its_shape() -> None:
    body = {"shots": [shot("Bad Id"), shot("a", "b"), {"id": "b"}, shot("a")], "assemble": "yes", "extra": 1}
    with pytest.raises(InvalidRequest) as exc:
        parse_storyboard(body)
    assert [(v.field, v.code) for v in exc.value.violations] == [
        ("extra", "unknown_field"), ("assemble", "invalid_type"), ("shots[0].id", "invalid_format"),
        ("shots[1].request.video_urls[0]", "unknown_shot"), ("shots[2].request", "invalid_type"),
        ("shots[3].id", "duplicate")]


def test_a_storyboard_has_one_to_twenty_shots() -> None:
    with pytest.raises(InvalidRequest, match="1 to 20 shots"):
        parse_storyboard({"shots": []})


def test_a_rerun_replaces_the_shot_and_every_shot_naming_it_through_others() -> None:
    spec = parse_storyboard({"shots": [shot("a"), shot("b", "a"), shot("c"), shot("d", "b"), shot("e", "c")]})
    assert affected_shots(spec, "a") == ["a", "b", "d"]
    assert affected_shots(spec, "c") == ["c", "e"]


def test_shot_references_become_references_to_the_shots_jobs() -> None:
    request = {**T2V, "image_urls": ["shot://a/last-frame", "https://cdn.example/x.png"]}
    assert to_job_references(request, {"a": JOB})["image_urls"] == [f"job://{JOB}/last-frame",
                                                                    "https://cdn.example/x.png"]


def test_a_storyboard_id_is_the_same_for_the_same_key_and_differs_between_tenants() -> None:
    spec = parse_storyboard({"shots": [shot("a")]})
    assert storyboard_id("t", "k", spec) == storyboard_id("t", "k", spec) != storyboard_id("u", "k", spec)
    assert storyboard_id("t", None, spec).startswith("sb_") and len(storyboard_id("t", None, spec)) == 29
