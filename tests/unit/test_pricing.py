"""Credits before a job runs: EvoLink's billing rules over the price table, and reading a table from a file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from handlers.base.errors import ConfigurationError
from handlers.domain.contract import FAMILIES, MODELS, QUALITIES
from handlers.domain.pricing import DEFAULT_PRICE_TABLE, PriceTable, Rate, estimate, load_price_table
from tests.conftest import ROOT

R2V = "seedance-2.0-reference-to-video"
STANDARD_720 = DEFAULT_PRICE_TABLE.rates["standard"]["720p"]


def body(**changes: Any) -> dict[str, Any]:
    return {"model": R2V, "prompt": "a paper boat", "duration": 10, "quality": "720p", **changes}


def flat_table(rate: float = 2.0, with_video: float = 1.0) -> PriceTable:
    return PriceTable({family: {q: Rate(rate, with_video) for q in QUALITIES[family]} for family in FAMILIES})


# --- the default table -----------------------------------------------------------------------------


def test_the_seeds_worked_example_10_s_of_720p_reserves_60_credits() -> None:
    """The seed's example task reserves 60 credits for 10 s of 720p; the default table says the same."""
    result = estimate(body(), [])
    assert result.credits == 60.0
    assert result.breakdown[0] == {"what": "output video", "seconds": 10, "rate": 6.0, "credits": 60.0}
    assert result.assumptions == []


def test_the_default_table_prices_every_family_and_quality_with_a_date_and_a_source() -> None:
    """Each quality each family offers has a rate, a lower with-video rate, a date and a source."""
    for family in FAMILIES:
        assert tuple(DEFAULT_PRICE_TABLE.rates[family]) == QUALITIES[family]
        for rate in DEFAULT_PRICE_TABLE.rates[family].values():
            assert 0 < rate.with_video < rate.credits
            assert len(rate.date) == 10 and rate.date.startswith("2026-") and rate.source


def test_docs_costs_shows_the_default_table_figure_for_figure() -> None:
    """docs/costs.md's table has every family and quality with the code's rates and dates."""
    text = (ROOT / "docs" / "costs.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (standard|fast|mini) \| (\w+) \| ([\d.]+) \| ([\d.]+) \| ([\d-]+) \|", text, re.M)
    documented = {(family, quality): (float(rate), float(video), date) for family, quality, rate, video, date in rows}
    assert documented == {(family, quality): (rate.credits, rate.with_video, rate.date)
                          for family, rates in DEFAULT_PRICE_TABLE.rates.items() for quality, rate in rates.items()}


def test_fast_and_mini_cost_less_than_standard_at_every_quality() -> None:
    """The families keep EvoLink's order: mini < fast < standard."""
    rates = DEFAULT_PRICE_TABLE.rates
    for quality in ("480p", "720p"):
        assert rates["mini"][quality].credits < rates["fast"][quality].credits < rates["standard"][quality].credits


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_is_priced_at_its_familys_rate(model: str) -> None:
    """Each of the nine models finds its family's rate for 480p."""
    family = MODELS[model].family
    assert DEFAULT_PRICE_TABLE.rate(model, "480p") == DEFAULT_PRICE_TABLE.rates[family]["480p"]


# --- the rules ------------------------------------------------------------------------------------


def test_output_is_billed_per_second_of_duration() -> None:
    """No reference video: duration x the quality's rate."""
    assert estimate(body(duration=7, quality="480p"), [], flat_table(rate=2.5)).credits == 17.5


def test_evolinks_defaults_apply_when_duration_and_quality_are_left_out() -> None:
    """EvoLink's defaults (5 s, 720p) are what an estimate of a bare request bills."""
    assert estimate({"model": R2V, "prompt": "p"}, []).credits == 5 * STANDARD_720.credits


@pytest.mark.parametrize(("inputs", "billed_input"), [([4.0], 10), ([6.0, 8.0], 14), ([12.5], 12.5)])
def test_reference_videos_bill_max_of_input_and_output_plus_output_at_the_video_rate(
        inputs: list[float], billed_input: float) -> None:
    """(max(input seconds, output seconds) + output seconds) x the with-video rate; inputs add up."""
    urls = [f"https://e.com/{i}.mp4" for i in range(len(inputs))]
    result = estimate(body(video_urls=urls), inputs, flat_table(rate=9.0, with_video=2.0))
    assert result.credits == (billed_input + 10) * 2.0
    assert [line["seconds"] for line in result.breakdown[:2]] == [10, billed_input]


def test_content_filter_off_multiplies_the_bill_by_1_1() -> None:
    """content_filter false adds 10% of everything else, on a line of its own."""
    result = estimate(body(content_filter=False), [])
    assert result.credits == 66.0
    assert result.breakdown[1]["what"] == "content_filter false: x1.1"


def test_generated_audio_is_free() -> None:
    """With or without generated audio the credits are the same; the audio line says it is free."""
    with_audio, without = estimate(body(generate_audio=True), []), estimate(body(generate_audio=False), [])
    assert with_audio.credits == without.credits
    assert {"what": "generated audio (free)", "seconds": 10, "rate": 0.0, "credits": 0.0} in with_audio.breakdown


def test_an_unreadable_reference_video_is_billed_at_the_worst_case_and_says_so() -> None:
    """A video of unknown length counts as 15 s, the most the rules allow, and the estimate says which."""
    urls = ["https://e.com/a.mp4", "https://e.com/b.mp4"]
    result = estimate(body(video_urls=urls, duration=5), [3.0, None], flat_table(with_video=1.0))
    assert result.credits == 15 + 5
    assert result.assumptions == ["reference video 2 (video_urls[1]) could not be read; billed as 12 s, "
                                  "the most the rules allow (15 s of reference video in all)"]


def test_web_search_is_named_as_not_estimated() -> None:
    """model_params.web_search bills per search made: the estimate says it is left out."""
    request = {"model": "seedance-2.0-text-to-video", "prompt": "news", "model_params": {"web_search": True}}
    assert "web_search" in estimate(request, []).assumptions[0]


def test_video_lengths_must_match_the_video_urls() -> None:
    """A caller that passes lengths for other videos than the request's gets a ValueError."""
    with pytest.raises(ValueError, match="1 reference videos but 0 lengths"):
        estimate(body(video_urls=["https://e.com/a.mp4"]), [])


def test_as_dict_is_the_api_answer() -> None:
    """as_dict gives credits, breakdown and assumptions, plain JSON."""
    answer = estimate(body(), []).as_dict()
    assert set(answer) == {"credits", "breakdown", "assumptions"}
    assert json.loads(json.dumps(answer)) == answer


# --- reading a table ------------------------------------------------------------------------------


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_a_table_file_round_trips_the_default_table(tmp_path: Path) -> None:
    """The default table written in the file format reads back equal, figure for figure."""
    table = load_price_table(write(tmp_path, DEFAULT_PRICE_TABLE.as_dict()))
    assert table.rates == DEFAULT_PRICE_TABLE.rates and table.content_filter_off == 1.1
    assert table.origin.endswith("prices.json")


def test_a_table_file_changes_the_estimate(tmp_path: Path) -> None:
    """An operator's rates are the ones an estimate bills."""
    document = flat_table(rate=1.0).as_dict()
    assert estimate(body(), [], load_price_table(write(tmp_path, document))).credits == 10.0


def _without(document: dict[str, Any], *path: str) -> dict[str, Any]:
    target = document
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return document


def _setting(document: dict[str, Any], value: object, *path: str) -> dict[str, Any]:
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


BAD_TABLES = {
    "not JSON": ("{families: ", ("is not valid JSON",)),
    "not an object": ("[1, 2]", ("must be a JSON object, got array",)),
    "no families": (_without(DEFAULT_PRICE_TABLE.as_dict(), "families"), ("families is missing",)),
    "missing family": (_without(DEFAULT_PRICE_TABLE.as_dict(), "families", "mini"),
                       ("families has no mini entry", "standard, fast, mini")),
    "unknown family": (_setting(DEFAULT_PRICE_TABLE.as_dict(), {}, "families", "pro"),
                       ("families.pro is not a model family",)),
    "missing quality": (_without(DEFAULT_PRICE_TABLE.as_dict(), "families", "standard", "1080p"),
                        ("families.standard has no 1080p entry",)),
    "quality a family lacks": (_setting(DEFAULT_PRICE_TABLE.as_dict(), {"rate": 1, "with_video_rate": 1},
                                        "families", "mini", "1080p"),
                               ("families.mini.1080p is not a quality mini models offer", "480p, 720p")),
    "negative rate": (_setting(DEFAULT_PRICE_TABLE.as_dict(), -1, "families", "fast", "720p", "rate"),
                      ("families.fast.720p.rate must not be negative, got -1",)),
    "rate not a number": (_setting(DEFAULT_PRICE_TABLE.as_dict(), "6", "families", "fast", "480p",
                                   "with_video_rate"),
                          ("families.fast.480p.with_video_rate must be a number", "'6'")),
    "rate a boolean": (_setting(DEFAULT_PRICE_TABLE.as_dict(), True, "families", "mini", "480p", "rate"),
                       ("families.mini.480p.rate must be a number",)),
    "rate missing": (_without(DEFAULT_PRICE_TABLE.as_dict(), "families", "mini", "720p", "with_video_rate"),
                     ("families.mini.720p has no with_video_rate",)),
    "misspelt field": (_setting(DEFAULT_PRICE_TABLE.as_dict(), 2, "families", "mini", "720p", "rates"),
                       ("families.mini.720p.rates is not a price table field",)),
    "negative multiplier": (_setting(DEFAULT_PRICE_TABLE.as_dict(), -1.1, "content_filter_off"),
                            ("content_filter_off must not be negative",)),
}


@pytest.mark.parametrize("case", BAD_TABLES, ids=list(BAD_TABLES))
def test_a_bad_table_is_one_line_naming_the_file_and_the_entry(tmp_path: Path, case: str) -> None:
    """Invalid JSON, a missing family or quality, a negative or non-numeric rate: ConfigurationError, one line."""
    document, says = BAD_TABLES[case]
    path = write(tmp_path, document)
    with pytest.raises(ConfigurationError) as info:
        load_price_table(path)
    message = info.value.message
    assert "\n" not in message and message.startswith(f"price table {path}: ")
    assert all(part in message for part in says), message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    """A path that does not exist is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=r"price table .*nope\.json: cannot be read"):
        load_price_table(tmp_path / "nope.json")
