"""Request validation: the spec's examples pass, every rule refuses with its field and code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from handlers.base.errors import InvalidRequest, Violation
from handlers.domain.contract import (
    ASPECT_RATIOS,
    AUDIO,
    DEFAULTS,
    DURATION_MAX,
    DURATION_MIN,
    IMAGE,
    MODEL_PARAMS_FIELDS,
    MODELS,
    REQUEST_BODY_MAX,
)
from handlers.provider.validation import (
    check_request,
    parse_request_bytes,
    reference_warnings,
    validate_request,
)
from tests.conftest import FIXTURES, load_fixture
from tests.support.requests import R2V, request_body, violation_codes

FAST_R2V = "seedance-2.0-fast-reference-to-video"
I2V = "seedance-2.0-image-to-video"
T2V = "seedance-2.0-text-to-video"

# The three request bodies of the seed document (seed/reference-to-video.ja.txt), verbatim.
SEED_EXAMPLES: list[dict[str, Any]] = [
    {
        "model": "seedance-2.0-reference-to-video",
        "prompt": "Replicate video 1's first-person perspective and camera pacing. Use audio 1 as "
        "the soundtrack for the entire video. Scene: a young rider weaving through a rain-soaked "
        "city street at night, neon reflections on wet asphalt.",
        "image_urls": ["https://example.com/rider-style.jpg"],
        "video_urls": ["https://example.com/pov-reference.mp4"],
        "audio_urls": ["https://example.com/synthwave-bgm.mp3"],
        "duration": 10,
        "quality": "720p",
        "aspect_ratio": "16:9",
    },
    {
        "model": "seedance-2.0-reference-to-video",
        "prompt": "The overall art style references the color palette and texture of the 3 "
        "provided images. Scene: a small-town summer market at dusk, warm tones.",
        "image_urls": [
            "https://example.com/style-ref-1.jpg",
            "https://example.com/style-ref-2.jpg",
            "https://example.com/style-ref-3.jpg",
        ],
        "duration": 8,
        "aspect_ratio": "16:9",
    },
    {
        "model": "seedance-2.0-reference-to-video",
        "prompt": "Replicate video 1's orbital camera movement and velocity curve. Subject: a "
        "classical sculpture in a museum hall at dusk.",
        "video_urls": ["https://example.com/orbit-shot.mp4"],
        "duration": 8,
        "quality": "720p",
        "aspect_ratio": "16:9",
    },
]

OPENAPI_FILES = sorted((FIXTURES / "evolink").glob("video-series__seedance2.0__*.json"))


def _schema(path: Path) -> dict[str, Any]:
    spec = load_fixture(f"evolink/{path.name}")
    schema: dict[str, Any] = spec["components"]["schemas"]["VideoGenerationRequest"]
    return schema


def _openapi_examples() -> list[Any]:
    params = []
    for path in OPENAPI_FILES:
        spec = load_fixture(f"evolink/{path.name}")
        content = spec["paths"]["/v1/videos/generations"]["post"]["requestBody"]["content"]
        for name, example in content["application/json"]["examples"].items():
            params.append(pytest.param(example["value"], id=f"{path.stem.split('__')[-1]}:{name}"))
    return params


# --- the spec's own examples ------------------------------------------------------------


@pytest.mark.parametrize("body", SEED_EXAMPLES, ids=["tri-modal", "images-only", "video-only"])
def test_seed_examples_validate(body: dict[str, Any]) -> None:
    """The three request examples of the original document are valid."""
    assert validate_request(body) == []


def test_all_openapi_files_are_present() -> None:
    """The four+ OpenAPI copies, fast and standard reference-to-video included, are found."""
    names = {path.name for path in OPENAPI_FILES}
    assert len(names) >= 4
    assert f"video-series__seedance2.0__{FAST_R2V}.json" in names
    assert f"video-series__seedance2.0__{R2V}.json" in names


@pytest.mark.parametrize("body", _openapi_examples())
def test_openapi_examples_validate(body: dict[str, Any]) -> None:
    """Every request example in EvoLink's current OpenAPI files is valid."""
    assert validate_request(body) == []


@pytest.mark.parametrize("path", OPENAPI_FILES, ids=lambda p: p.stem.split("__")[-1])
def test_enums_and_fields_match_openapi(path: Path) -> None:
    """Per model file: model id, quality and aspect-ratio enums, fields and required keys agree."""
    schema = _schema(path)
    props = schema["properties"]
    (model,) = props["model"]["enum"]
    spec = MODELS[model]
    assert tuple(props["quality"]["enum"]) == spec.qualities
    assert tuple(props["aspect_ratio"]["enum"]) == ASPECT_RATIOS
    assert set(props) == spec.fields
    assert set(schema["required"]) == {"model", "prompt"} | ({"image_urls"} if spec.min_images else set())


@pytest.mark.parametrize("path", OPENAPI_FILES, ids=lambda p: p.stem.split("__")[-1])
def test_limits_and_defaults_match_openapi(path: Path) -> None:
    """Array sizes, duration range and defaults in each file equal the contract's."""
    props = _schema(path)["properties"]
    spec = MODELS[props["model"]["enum"][0]]
    for limits in spec.media:
        high = spec.max_images if limits is IMAGE else limits.max_count
        assert props[limits.array]["maxItems"] == high
        assert props[limits.array].get("minItems", 0) == (spec.min_images if limits is IMAGE else 0)
    assert (props["duration"]["minimum"], props["duration"]["maximum"]) == (DURATION_MIN, DURATION_MAX)
    for field in ("duration", "quality", "aspect_ratio", "generate_audio", "content_filter"):
        assert props[field]["default"] == DEFAULTS[field]
    if "model_params" in props:
        assert tuple(props["model_params"]["properties"]) == MODEL_PARAMS_FIELDS


# --- one test per rule ------------------------------------------------------------------


@pytest.mark.parametrize("body", [[], "model", None, 42, True])
def test_body_must_be_an_object(body: object) -> None:
    """A body that is not a JSON object is one violation at '$'."""
    assert violation_codes(body) == {("$", "invalid_type")}


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"model": None}, "model", "required"),
        ({"model": 7}, "model", "invalid_type"),
        ({"model": "seedance-3.0-reference-to-video"}, "model", "unknown_model"),
        ({"prompt": None}, "prompt", "required"),
        ({"prompt": ["text"]}, "prompt", "invalid_type"),
        ({"prompt": ""}, "prompt", "empty"),
        ({"prompt": " \n\t "}, "prompt", "empty"),
        ({"prompt": "字" * 501}, "prompt", "too_long"),
        ({"prompt": "word " * 1001}, "prompt", "too_long"),
    ],
)
def test_model_and_prompt_rules(changes: dict[str, Any], field: str, code: str) -> None:
    """model and prompt are required, typed, known, non-empty and within the length budget."""
    assert (field, code) in violation_codes(request_body(**changes))


def test_unknown_model_message_names_the_valid_models() -> None:
    """unknown_model lists every valid model id."""
    (violation,) = validate_request(request_body(model="seedance-1"))
    assert all(name in violation.message for name in MODELS)


def test_too_long_prompt_message_gives_the_measure() -> None:
    """too_long reports the measured CJK characters and words and the limits."""
    (violation,) = validate_request(request_body(prompt="字" * 400 + " word" * 300))
    assert "400 CJK characters and 300 words" in violation.message
    assert "500 CJK characters or 1000 words" in violation.message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": I2V, "prompt": "p", "image_urls": ["https://e.com/a.png"],
          "video_urls": ["https://e.com/a.mp4"]}, "video_urls"),
        ({"model": I2V, "prompt": "p", "image_urls": ["https://e.com/a.png"],
          "audio_urls": []}, "audio_urls"),
        ({"model": T2V, "prompt": "p", "image_urls": ["https://e.com/a.png"]}, "image_urls"),
        (request_body(model_params={"web_search": True}), "model_params"),
        (request_body(seed=42), "seed"),
        ({"model": T2V, "prompt": "p", "model_params": {"web_search": True, "depth": 2}},
         "model_params.depth"),
    ],
)
def test_unknown_fields_are_refused(body: dict[str, Any], field: str) -> None:
    """A field the chosen model does not accept is unknown_field at that key."""
    assert (field, "unknown_field") in violation_codes(body)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"duration": "5"}, "duration"),
        ({"duration": 5.0}, "duration"),
        ({"duration": True}, "duration"),
        ({"quality": 720}, "quality"),
        ({"aspect_ratio": 1.77}, "aspect_ratio"),
        ({"generate_audio": "true"}, "generate_audio"),
        ({"generate_audio": 1}, "generate_audio"),
        ({"content_filter": "false"}, "content_filter"),
        ({"content_filter": 0}, "content_filter"),
        ({"image_urls": "https://example.com/a.jpg"}, "image_urls"),
        ({"video_urls": {"0": "https://example.com/a.mp4"}}, "video_urls"),
        ({"audio_urls": ["https://example.com/a.mp3", 3]}, "audio_urls[1]"),
        ({"callback_url": 12}, "callback_url"),
    ],
)
def test_wrong_types_are_refused(changes: dict[str, Any], field: str) -> None:
    """Strings, JSON booleans, integers (not bool or float) and string arrays are enforced."""
    assert (field, "invalid_type") in violation_codes(request_body(**changes))


@pytest.mark.parametrize(
    ("model_params", "field"),
    [([], "model_params"), ("on", "model_params"), ({"web_search": "yes"}, "model_params.web_search")],
)
def test_model_params_is_an_object_of_booleans(model_params: object, field: str) -> None:
    """text-to-video's model_params is an object whose web_search is a boolean."""
    body = {"model": T2V, "prompt": "today's weather", "model_params": model_params}
    assert violation_codes(body) == {(field, "invalid_type")}


def test_null_is_not_a_value() -> None:
    """An optional field sent as null is refused, not treated as absent."""
    body = request_body() | {"duration": None, "generate_audio": None}
    assert violation_codes(body) == {("duration", "invalid_type"), ("generate_audio", "invalid_type")}


def test_type_message_names_the_expected_type() -> None:
    """invalid_type says what was expected and what came."""
    (violation,) = validate_request(request_body(duration=5.5))
    assert violation.message == "duration must be an integer number of seconds, got number"


@pytest.mark.parametrize(
    ("changes", "field", "code", "message"),
    [
        ({"image_urls": [f"https://e.com/{i}.jpg" for i in range(10)]}, "image_urls", "too_many",
         "at most 9 images are allowed, got 10"),
        ({"video_urls": [f"https://e.com/{i}.mp4" for i in range(4)]}, "video_urls", "too_many",
         "at most 3 videos are allowed, got 4"),
        ({"audio_urls": [f"https://e.com/{i}.mp3" for i in range(4)]}, "audio_urls", "too_many",
         "at most 3 audio clips are allowed, got 4"),
    ],
)
def test_reference_counts_are_capped(changes: dict[str, Any], field: str, code: str,
                                     message: str) -> None:
    """reference-to-video takes at most 9 images, 3 videos and 3 audio clips."""
    assert Violation(field, code, message) in validate_request(request_body(**changes))


@pytest.mark.parametrize(
    ("images", "code", "message"),
    [
        ([], "too_few", "at least 1 image is required by seedance-2.0-image-to-video, got 0"),
        (None, "too_few", "at least 1 image is required by seedance-2.0-image-to-video, got 0"),
        (["https://e.com/1.png"] * 3, "too_many", "at most 2 images are allowed, got 3"),
    ],
)
def test_image_to_video_takes_one_or_two_images(images: list[str] | None, code: str,
                                                message: str) -> None:
    """image-to-video requires 1 (first frame) or 2 (first and last frame) images."""
    body: dict[str, Any] = {"model": I2V, "prompt": "zoom in"}
    if images is not None:
        body["image_urls"] = images
    assert validate_request(body) == [Violation("image_urls", code, message)]


@pytest.mark.parametrize("count", [1, 2])
def test_image_to_video_accepts_one_or_two_images(count: int) -> None:
    """One or two images are valid for image-to-video."""
    body = {"model": I2V, "prompt": "zoom in", "image_urls": ["https://e.com/a.webp"] * count}
    assert validate_request(body) == []


@pytest.mark.parametrize(
    ("model", "quality", "ok"),
    [
        (R2V, "1080p", True),
        (R2V, "4k", True),
        (R2V, "480p", True),
        (FAST_R2V, "720p", True),
        (FAST_R2V, "1080p", False),
        (FAST_R2V, "4k", False),
        (R2V, "8k", False),
        (R2V, "720P", False),
    ],
)
def test_quality_depends_on_the_model(model: str, quality: str, ok: bool) -> None:
    """Standard models offer 480p-4k; fast models only 480p and 720p."""
    codes = violation_codes(request_body(model=model, quality=quality))
    assert (("quality", "invalid_choice") in codes) is not ok


def test_invalid_choice_lists_the_models_values() -> None:
    """The invalid_choice message lists exactly what that model offers."""
    (violation,) = validate_request(request_body(model=FAST_R2V, quality="1080p"))
    assert violation.message.endswith("choose one of 480p, 720p")


MINI_MODELS = ("seedance-2.0-mini-text-to-video", "seedance-2.0-mini-image-to-video",
               "seedance-2.0-mini-reference-to-video")


def _mini_body(model: str, **changes: Any) -> dict[str, Any]:
    mode = model.removeprefix("seedance-2.0-mini-")
    references = {"text-to-video": {}, "image-to-video": {"image_urls": ["https://e.com/a.webp"]},
                  "reference-to-video": {"video_urls": ["https://e.com/v.mp4"]}}[mode]
    return {"model": model, "prompt": "a paper boat", **references, **changes}


@pytest.mark.parametrize("model", MINI_MODELS)
@pytest.mark.parametrize("quality", ["480p", "720p"])
def test_mini_models_accept_480p_and_720p(model: str, quality: str) -> None:
    """The three mini models are known and take 480p and 720p, like EvoLink's model matrix says."""
    assert validate_request(_mini_body(model, quality=quality, duration=15)) == []


@pytest.mark.parametrize("model", MINI_MODELS)
@pytest.mark.parametrize("quality", ["1080p", "4k"])
def test_mini_models_refuse_1080p_naming_the_field_and_the_accepted_values(model: str, quality: str) -> None:
    """A mini model with 1080p (or 4k) is refused on quality, listing 480p and 720p."""
    (violation,) = validate_request(_mini_body(model, quality=quality))
    assert (violation.field, violation.code) == ("quality", "invalid_choice")
    assert model in violation.message and violation.message.endswith("choose one of 480p, 720p")


def test_mini_text_to_video_takes_no_model_params() -> None:
    """Unlike the other text-to-video models, the mini one refuses model_params."""
    (violation,) = validate_request(_mini_body(MINI_MODELS[0], model_params={"web_search": True}))
    assert (violation.field, violation.code) == ("model_params", "unknown_field")
    assert validate_request({"model": T2V, "prompt": "p", "model_params": {"web_search": True}}) == []


def test_mini_models_share_the_other_tiers_media_limits() -> None:
    """Mini image-to-video needs 1-2 images; mini reference-to-video takes up to 9/3/3 references."""
    spec = MODELS["seedance-2.0-mini-reference-to-video"]
    assert (spec.family, spec.max_images, [m.max_count for m in spec.media]) == ("mini", 9, [9, 3, 3])
    codes = violation_codes(_mini_body(MINI_MODELS[1], image_urls=[]))
    assert ("image_urls", "too_few") in codes


@pytest.mark.parametrize("ratio", [*ASPECT_RATIOS])
def test_every_aspect_ratio_is_accepted(ratio: str) -> None:
    """All seven aspect ratios, adaptive included, are valid."""
    assert validate_request(request_body(aspect_ratio=ratio)) == []


@pytest.mark.parametrize("ratio", ["5:4", "16:10", "ADAPTIVE", ""])
def test_other_aspect_ratios_are_refused(ratio: str) -> None:
    """Any other aspect ratio is invalid_choice."""
    assert violation_codes(request_body(aspect_ratio=ratio)) == {("aspect_ratio", "invalid_choice")}


@pytest.mark.parametrize(("duration", "ok"), [(3, False), (4, True), (15, True), (16, False),
                                              (-5, False), (10**30, False)])
def test_duration_is_4_to_15_seconds(duration: int, ok: bool) -> None:
    """duration must be an integer from 4 to 15 inclusive."""
    codes = violation_codes(request_body(duration=duration))
    assert codes == (set() if ok else {("duration", "out_of_range")})


def test_audio_alone_is_refused() -> None:
    """Audio without any image or video is audio_needs_visual on audio_urls."""
    body = request_body(image_urls=[], video_urls=None)
    assert violation_codes(body) == {("audio_urls", "audio_needs_visual")}


@pytest.mark.parametrize("visual", [{"image_urls": None}, {"video_urls": None}])
def test_audio_with_one_visual_kind_is_fine(visual: dict[str, Any]) -> None:
    """Audio with images only or videos only is valid."""
    assert validate_request(request_body(**visual)) == []


def test_no_references_at_all_is_valid() -> None:
    """reference-to-video without any reference behaves like text-to-video and is valid."""
    assert validate_request(request_body(image_urls=None, video_urls=None, audio_urls=None)) == []


# --- all at once, check_request, parse_request_bytes -------------------------------------


def test_every_violation_is_reported_at_once() -> None:
    """A body breaking many rules gets all of them in one list, not just the first."""
    body = {
        "model": FAST_R2V,
        "prompt": "",
        "image_urls": [f"http://e.com/{i}.gif" for i in range(10)],
        "audio_urls": ["data:audio/mp3;base64,AAAA"],
        "duration": 30,
        "quality": "4k",
        "aspect_ratio": "2:1",
        "generate_audio": "yes",
        "callback_url": "http://relay.example.com/cb",
        "extra": 1,
    }
    codes = violation_codes(body)
    assert {
        ("prompt", "empty"),
        ("extra", "unknown_field"),
        ("image_urls", "too_many"),
        ("image_urls[0]", "insecure_url"),
        ("image_urls[9]", "unsupported_format"),
        ("audio_urls[0]", "inline_data_forbidden"),
        ("duration", "out_of_range"),
        ("quality", "invalid_choice"),
        ("aspect_ratio", "invalid_choice"),
        ("generate_audio", "invalid_type"),
        ("callback_url", "insecure_url"),
    } <= codes


def test_unknown_model_still_checks_model_independent_rules() -> None:
    """With an unknown model, prompt, duration, URLs and foreign keys are still checked."""
    body = {"model": "nope", "prompt": 3, "duration": 1, "image_urls": ["ftp://e.com/a.jpg"],
            "quality": "8k", "bogus": True}
    assert violation_codes(body) == {
        ("model", "unknown_model"),
        ("prompt", "invalid_type"),
        ("duration", "out_of_range"),
        ("image_urls[0]", "insecure_url"),
        ("quality", "invalid_choice"),
        ("bogus", "unknown_field"),
    }


def test_check_request_returns_an_unchanged_copy() -> None:
    """check_request returns an equal, independent copy without injected defaults."""
    body = SEED_EXAMPLES[1]
    result = check_request(body)
    assert result == body
    assert result is not body
    assert result["image_urls"] is not body["image_urls"]
    assert "quality" not in result


def test_check_request_raises_with_all_violations() -> None:
    """check_request raises InvalidRequest carrying every violation."""
    with pytest.raises(InvalidRequest, match="duration: duration must be 4 to 15") as caught:
        check_request(request_body(duration=2, quality="8k"))
    assert {v.code for v in caught.value.violations} == {"out_of_range", "invalid_choice"}
    assert caught.value.as_dict()["errors"][0]["field"] == "duration"


def test_check_request_passes_options_through() -> None:
    """check_request honours allow_http and callback like validate_request."""
    body = request_body(image_urls=["http://localhost/a.png"], callback_url=None)
    assert check_request(body, allow_http=True, callback="forbidden") == body
    with pytest.raises(InvalidRequest, match="must use https"):
        check_request(body)


def test_parse_request_bytes_accepts_a_validrequest_body() -> None:
    """Valid UTF-8 JSON bytes come back as the same object."""
    raw = json.dumps(SEED_EXAMPLES[0], ensure_ascii=False).encode("utf-8")
    assert parse_request_bytes(raw) == SEED_EXAMPLES[0]


@pytest.mark.parametrize(
    ("raw", "code", "match"),
    [
        (b'{"model": ', "invalid_json", "line 1 column 11"),
        (b'{"model": "x",\n "prompt": }', "invalid_json", "line 2 column 12"),
        (b"\xff\xfe{}", "invalid_json", "not UTF-8"),
        (b'{"a": 1, "a": 2}', "invalid_json", "duplicate key 'a'"),
        (b'{"duration": NaN}', "invalid_json", "NaN is not valid JSON"),
        (b'{"duration": 1e999}', "invalid_json", "out of range"),
        (b"[" * 100_000, "invalid_json", "more than 64 levels deep"),
        (b"[1, 2]", "invalid_type", "must be a JSON object, got array"),
        (b'"text"', "invalid_type", "got string"),
    ],
)
def test_parse_request_bytes_refuses_bad_json(raw: bytes, code: str, match: str) -> None:
    """Undecodable or non-object bodies are one violation at '$' saying what went wrong."""
    with pytest.raises(InvalidRequest, match=match) as caught:
        parse_request_bytes(raw)
    assert [(v.field, v.code) for v in caught.value.violations] == [("$", code)]


def test_parse_request_bytes_refuses_bodies_over_64_mb() -> None:
    """A body over REQUEST_BODY_MAX is too_large before any parsing."""
    with pytest.raises(InvalidRequest, match="at most 67108864 bytes") as caught:
        parse_request_bytes(b" " * (REQUEST_BODY_MAX + 1))
    assert caught.value.violations[0].code == "too_large"


def test_parse_request_bytes_validates_the_object() -> None:
    """A well-formed JSON object still goes through every rule."""
    with pytest.raises(InvalidRequest, match="prompt is required"):
        parse_request_bytes(b'{"model": "seedance-2.0-text-to-video"}')


# --- warnings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "mentioned"),
    [
        ("Blend image 4 into @image1", ["image 4"]),
        ("Use @image4 and @video2 and audio 2", ["image 4", "video 2", "audio 2"]),
        ("Use image 0", ["image 0"]),
        ("Use image 3, @video1 and audio 1", []),
        ("Use @image4 twice: @image4", ["image 4"]),
    ],
)
def test_reference_warnings_flag_mentions_beyond_the_arrays(prompt: str, mentioned: list[str]) -> None:
    """Naming 'image 4' with 3 images given warns on prompt, once per distinct mention."""
    body = request_body(prompt=prompt, image_urls=["https://e.com/a.jpg"] * 3)
    warnings = reference_warnings(body)
    assert {(v.field, v.code) for v in warnings} <= {("prompt", "reference_out_of_range")}
    assert [w.message.split(" but ")[0].removeprefix("prompt mentions ") for w in warnings] == mentioned


def test_reference_warnings_are_not_errors() -> None:
    """A body that only has warnings still validates."""
    body = request_body(prompt="use image 9")
    assert validate_request(body) == []
    assert reference_warnings(body)[0].message == (
        "prompt mentions image 9 but 1 image is given (numbered from 1 in array order)"
    )


@pytest.mark.parametrize("body", [None, [], {"prompt": 3}, {"prompt": "image 1", "image_urls": "x"}])
def test_reference_warnings_tolerate_malformed_bodies(body: object) -> None:
    """reference_warnings never raises; it warns only on what it can read."""
    assert all(v.code == "reference_out_of_range" for v in reference_warnings(body))


def test_audio_limits_come_from_the_contract() -> None:
    """The audio cap in messages is the contract's, not a copy."""
    urls = ["https://e.com/a.mp3"] * (AUDIO.max_count + 1)
    (violation,) = validate_request(request_body(audio_urls=urls))
    assert f"at most {AUDIO.max_count} audio clips" in violation.message


def test_odd_unknown_keys_get_a_quoted_path() -> None:
    """A key that is not an identifier is reported as a quoted JSON path segment."""
    assert violation_codes(request_body(**{"odd key": 1, "": 2})) == {('["odd key"]', "unknown_field"),
                                                     ('[""]', "unknown_field")}


ALL_CODES = [
    "audio_needs_visual", "empty", "inline_data_forbidden", "insecure_url", "invalid_choice",
    "invalid_json", "invalid_type", "invalid_url", "not_allowed", "out_of_range",
    "reference_out_of_range", "required", "too_few", "too_large", "too_long", "too_many",
    "unknown_field", "unknown_model", "unsupported_format",
]


@pytest.mark.parametrize("code", ALL_CODES)
def test_every_code_is_documented(code: str) -> None:
    """docs/validation.md's rule table names every violation code."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "validation.md").read_text(encoding="utf-8")
    assert f"`{code}`" in docs
