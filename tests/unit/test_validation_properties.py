"""Property tests: validation never crashes on JSON-like input, and valid requests pass."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.base.errors import InvalidRequest, Violation
from handlers.domain.contract import ASPECT_RATIOS, IMAGE, MODEL_PARAMS_FIELDS, MODELS, MediaLimits, ModelSpec
from handlers.provider.prompt import find_reference_mentions, measure_prompt
from handlers.provider.validation import check_request, parse_request_bytes, reference_warnings, validate_request

FIELD_NAMES = sorted({name for spec in MODELS.values() for name in spec.fields})
PROPERTY = settings(database=None, deadline=None, max_examples=200)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
url_like = st.one_of(
    st.sampled_from(
        [
            "https://example.com/a.jpg",
            "http://example.com/a.mp4",
            "data:image/png;base64,AAAA",
            "https://u:p@example.com/a.mp3",
            "https://[::1",
            "https://example.com:0x/a",
            "//example.com/a.png",
            "A" * 200,
        ]
    ),
    st.builds(lambda a, b: f"https://{a}/{b}", st.text(max_size=20), st.text(max_size=20)),
    st.text(max_size=60),
)
field_values = st.one_of(
    json_values,
    url_like,
    st.lists(st.one_of(url_like, json_scalars), max_size=12),
    st.sampled_from([*MODELS, *ASPECT_RATIOS, "1080p", "4k", "480p"]),
    st.dictionaries(st.sampled_from([*MODEL_PARAMS_FIELDS, "x"]), json_scalars, max_size=2),
)
json_like_bodies = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=12), field_values, max_size=12),
)


@PROPERTY
@given(json_like_bodies)
def test_validate_request_never_raises(body: Any) -> None:
    """Any JSON-like input yields a list of Violations with string fields, never an exception."""
    violations = validate_request(body)
    assert isinstance(violations, list)
    assert all(isinstance(v, Violation) for v in violations)
    assert all(v.field and v.code and v.message for v in violations)
    assert all(isinstance(v, Violation) for v in reference_warnings(body))


@PROPERTY
@given(json_like_bodies, st.booleans())
def test_check_request_agrees_with_validate_request(body: Any, allow_http: bool) -> None:
    """check_request raises exactly when validate_request finds a violation."""
    violations = validate_request(body, allow_http=allow_http, callback="forbidden")
    if violations:
        with pytest.raises(InvalidRequest, match="invalid request"):
            check_request(body, allow_http=allow_http, callback="forbidden")
    else:
        assert check_request(body, allow_http=allow_http, callback="forbidden") == body


@PROPERTY
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_parse_request_bytes_only_raises_invalid_request(raw: bytes) -> None:
    """Arbitrary bytes either parse into a valid body or raise InvalidRequest with reasons."""
    violations: tuple[Violation, ...] = ()
    try:
        parse_request_bytes(raw)
    except InvalidRequest as exc:
        violations = exc.violations or (Violation("", "", ""),)
    assert all(v.field and v.code for v in violations)


@PROPERTY
@given(st.text())
def test_prompt_measure_never_raises(text: str) -> None:
    """Any text has a non-negative measure, and mentions are well-formed."""
    length = measure_prompt(text)
    assert length.cjk_chars >= 0
    assert length.words >= 0
    assert all(kind in {"image", "video", "audio"} and n >= 0 for kind, n in find_reference_mentions(text))


@PROPERTY
@given(st.lists(st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True), max_size=50))
def test_space_separated_words_count_one_each(words: list[str]) -> None:
    """Plain alphanumeric tokens separated by spaces count one word each."""
    assert measure_prompt(" ".join(words)).words == len(words)


@PROPERTY
@given(st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=600))
def test_han_characters_count_one_each(text: str) -> None:
    """Every unified Han ideograph is one CJK character; the budget fits up to 500."""
    length = measure_prompt(text)
    assert length.cjk_chars == len(text)
    assert length.fits is (len(text) <= 500)


# --- a valid-request generator ------------------------------------------------------------

hosts = st.from_regex(r"[a-z][a-z0-9-]{0,15}(\.[a-z]{2,6}){1,2}", fullmatch=True)
segments = st.from_regex(r"[A-Za-z0-9_-]{1,16}", fullmatch=True)
prompt_words = st.lists(st.from_regex(r"[A-Za-z]{1,10}", fullmatch=True), min_size=1, max_size=400)
prompt_cjk = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=250)


@st.composite
def media_urls(draw: st.DrawFn, limits: MediaLimits) -> str:
    ext = draw(st.sampled_from([*limits.extensions, ""]))
    ext = ext.upper() if draw(st.booleans()) else ext
    query = draw(st.sampled_from(["", "?sig=abc", "?v=1.gif"]))
    return f"https://{draw(hosts)}/{draw(segments)}/{draw(segments)}{ext}{query}"


def _count_range(spec: ModelSpec, limits: MediaLimits) -> tuple[int, int]:
    return (spec.min_images, spec.max_images) if limits is IMAGE else (0, limits.max_count)


@st.composite
def media_arrays(draw: st.DrawFn, spec: ModelSpec) -> dict[str, list[str]]:
    arrays: dict[str, list[str]] = {}
    for limits in spec.media:
        low, high = _count_range(spec, limits)
        count = draw(st.integers(low, high))
        if count or low or draw(st.booleans()):
            arrays[limits.array] = draw(st.lists(media_urls(limits), min_size=count, max_size=count))
    if arrays.get("audio_urls") and not (arrays.get("image_urls") or arrays.get("video_urls")):
        arrays["video_urls"] = [f"https://{draw(hosts)}/clip.mp4"]
    return arrays


@st.composite
def options(draw: st.DrawFn, spec: ModelSpec) -> dict[str, Any]:
    choices: dict[str, st.SearchStrategy[Any]] = {
        "duration": st.integers(4, 15),
        "quality": st.sampled_from(spec.qualities),
        "aspect_ratio": st.sampled_from(ASPECT_RATIOS),
        "generate_audio": st.booleans(),
        "content_filter": st.booleans(),
        "callback_url": st.builds(lambda h, s: f"https://{h}/cb/{s}", hosts, segments),
    }
    if "model_params" in spec.fields:
        choices["model_params"] = st.fixed_dictionaries({}, optional={"web_search": st.booleans()})
    return draw(st.fixed_dictionaries({}, optional=choices))


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    spec = draw(st.sampled_from(list(MODELS.values())))
    prompt = draw(prompt_cjk) + " " + " ".join(draw(prompt_words))
    return {"model": spec.name, "prompt": prompt, **draw(media_arrays(spec)), **draw(options(spec))}


@PROPERTY
@given(valid_requests())
def test_generated_valid_requests_validate(body: dict[str, Any]) -> None:
    """Any body built within the contract's limits validates and round-trips unchanged."""
    assert validate_request(body) == []
    assert check_request(body) == body
    assert parse_request_bytes(json.dumps(body, ensure_ascii=False).encode("utf-8")) == body


@PROPERTY
@given(valid_requests(), st.sampled_from(["duration", "quality", "prompt", "model"]))
def test_breaking_one_field_of_a_valid_request_is_caught(body: dict[str, Any], field: str) -> None:
    """Replacing one field of a valid body with a wrong-typed value yields a violation there."""
    broken = {**body, field: [None]}
    assert field in {v.field for v in validate_request(broken)}
