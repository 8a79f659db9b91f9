"""The shared JSON reader: a nesting limit checked without recursion, and strict request bodies."""

from __future__ import annotations

import json

import pytest

from handlers.base.errors import InvalidRequest
from handlers.base.jsonbody import MAX_DEPTH, json_depth, parse_object
from handlers.domain.jobrequest import JobRequest, check_metadata, parse_job_request


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return '{"a": ' + opener * (depth - 1) + "1" + closer * (depth - 1) + "}"


@pytest.mark.parametrize(("text", "depth"), [
    ("{}", 1), ('{"a": [1, {"b": []}]}', 4), ('{"a": "[[[[[[{{{{"}', 1), (r'{"a": "\"[[[", "b": [[]]}', 3),
    ("[]" * 500, 1),
])
def test_json_depth_counts_brackets_outside_strings(text: str, depth: int) -> None:
    """Brackets inside strings (escaped quotes included) do not count; siblings do not add up."""
    assert json_depth(text) == depth == json_depth(text.encode())


@pytest.mark.parametrize("raw", [nested(MAX_DEPTH), nested(MAX_DEPTH, "{\"k\": ", "}")])
def test_nesting_up_to_the_limit_is_read(raw: str) -> None:
    """Exactly MAX_DEPTH levels (arrays or objects) parse."""
    assert parse_object(raw.encode())["a"] is not None


@pytest.mark.parametrize("raw", [nested(MAX_DEPTH + 1).encode(), b"[" * 100_000, b'{"a": ' + b"{" * 5_000,
                                 b'{"m": ' + b'{"k": ' * 5_000 + b"1" + b"}" * 5_001])
@pytest.mark.parametrize("strict", [False, True])
def test_deeper_nesting_is_invalid_json_naming_the_limit(raw: bytes, strict: bool) -> None:
    """Past MAX_DEPTH (however deep: no RecursionError) is one invalid_json violation naming the limit."""
    with pytest.raises(InvalidRequest, match=f"more than {MAX_DEPTH} levels deep") as caught:
        parse_object(raw, strict=strict)
    assert [(v.field, v.code) for v in caught.value.violations] == [("$", "invalid_json")]


def test_many_brackets_in_strings_do_not_trip_the_limit() -> None:
    """A prompt full of brackets is text, not nesting."""
    body = {"prompt": "[" * 10_000 + "{" * 10_000}
    assert parse_object(json.dumps(body).encode()) == body


@pytest.mark.parametrize(("raw", "match"), [(b'{"a": 1, "a": 2}', "duplicate key 'a'"),
                                            (b'{"a": NaN}', "NaN is not valid JSON"),
                                            (b"\xff{}", "not UTF-8")])
def test_strict_reading_refuses_what_parsers_disagree_on(raw: bytes, match: str) -> None:
    """strict=True refuses duplicate keys, NaN and non-UTF-8; the lenient reader takes the first two."""
    with pytest.raises(InvalidRequest, match=match):
        parse_object(raw, strict=True)
    if raw.startswith(b"{"):
        parse_object(raw)


def test_a_job_request_splits_metadata_from_the_evolink_body() -> None:
    """metadata is the relay's option: kept apart, never part of what goes to EvoLink."""
    raw = json.dumps({"model": "m", "prompt": "p", "metadata": {"order": 1}}).encode()
    assert parse_job_request(raw) == JobRequest(body={"model": "m", "prompt": "p"}, metadata={"order": 1})
    assert parse_job_request(b'{"model": "m"}').metadata == {}


def test_a_job_request_with_a_duplicated_key_is_invalid_json() -> None:
    """The same duplicate that EvoLink's parser would refuse is refused before anything else runs."""
    with pytest.raises(InvalidRequest, match="duplicate key 'prompt'"):
        parse_job_request(b'{"model": "m", "prompt": "a", "prompt": "b"}')


@pytest.mark.parametrize(("metadata", "code"), [([1], "invalid_type"), ("x", "invalid_type"),
                                                ({"blob": "x" * 20_000}, "too_large")])
def test_metadata_must_be_a_small_object(metadata: object, code: str) -> None:
    """metadata is a JSON object of at most METADATA_MAX_BYTES."""
    assert [v.code for v in check_metadata(metadata)] == [code]
    assert check_metadata({"order": 1}) == []
