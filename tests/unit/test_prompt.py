"""Prompt length (CJK characters + words under one budget) and reference mentions."""

from __future__ import annotations

import dataclasses

import pytest

from handlers.domain.contract import PROMPT_MAX_CJK_CHARS, PROMPT_MAX_WORDS
from handlers.provider.prompt import PromptLength, find_reference_mentions, measure_prompt


@pytest.mark.parametrize(
    ("text", "cjk_chars", "words"),
    [
        ("一只小猫在草地上奔跑", 10, 0),
        ("草原の上を走る子猫", 9, 0),
        ("カタカナとひらがな", 9, 0),
        ("고양이가 달린다", 7, 0),
        ("A kitten runs across the meadow", 0, 6),
        ("Use image 1 as the first frame", 0, 7),
        ("用 image 1 作为首帧", 5, 2),
        ("AI生成の動画", 5, 1),
    ],
)
def test_counts_cjk_characters_and_words_separately(text: str, cjk_chars: int, words: int) -> None:
    """Han, kana and Hangul count per character; other text counts per word."""
    assert measure_prompt(text) == PromptLength(cjk_chars=cjk_chars, words=words)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("don't stop", 2),
        ("it\u2019s fine", 2),
        ("state-of-the-art", 1),
        ("rock--roll", 2),
        ("-dash- 'quoted'", 2),
        ("snake_case", 2),
        ("3.14", 2),
        ("हिन्दी भाषा", 2),
        ("café naïve", 2),
    ],
)
def test_words_join_inner_apostrophes_and_hyphens_only(text: str, words: int) -> None:
    """One apostrophe or hyphen between letters joins; anything else separates words."""
    assert measure_prompt(text).words == words


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t",
        "!?.,;:()[]{}",
        "。、「」・\uff01\uff1f",
        "\u3000\u3000",
        "🎬🎥✨",
        "\u2014 \u2026 \u2013",
    ],
)
def test_punctuation_whitespace_and_symbols_count_nothing(text: str) -> None:
    """ASCII and CJK punctuation, ideographic spaces and emoji are free."""
    assert measure_prompt(text) == PromptLength(0, 0)


def test_fullwidth_latin_counts_as_words() -> None:
    """Fullwidth letters and digits fold to ASCII (NFKC): one word, not six CJK characters."""
    assert measure_prompt("\uff21\uff22\uff23\uff11\uff12\uff13") == PromptLength(0, 1)


def test_halfwidth_katakana_counts_one_per_folded_character() -> None:
    """Halfwidth ka + voiced mark fold to one fullwidth ga: one CJK character."""
    assert measure_prompt("\uff76\uff9e") == PromptLength(1, 0)


def test_han_extensions_and_compatibility_ideographs_count() -> None:
    """Extension A, extension B (plane 2) and compatibility ideographs are CJK."""
    assert measure_prompt("\u3400\U00020000\uf900\u3005").cjk_chars == 4


@pytest.mark.parametrize(
    ("text", "fits"),
    [
        ("中" * PROMPT_MAX_CJK_CHARS, True),
        ("中" * (PROMPT_MAX_CJK_CHARS + 1), False),
        ("word " * PROMPT_MAX_WORDS, True),
        ("word " * (PROMPT_MAX_WORDS + 1), False),
        ("中" * 250 + " word" * 500, True),
        ("中" * 250 + " word" * 501, False),
        ("中" * 251 + " word" * 499, False),
        ("中" * 400 + " word" * 200, True),
        ("中" * 400 + " word" * 201, False),
    ],
)
def test_budget_boundaries_are_exact(text: str, fits: bool) -> None:
    """500 CJK fit, 501 do not; 1000 words fit, 1001 do not; mixed text shares the budget."""
    assert measure_prompt(text).fits is fits


def test_budget_used_reports_the_shared_fraction() -> None:
    """250 CJK characters plus 250 words use three quarters of the budget."""
    assert measure_prompt("中" * 250 + " word" * 250).budget_used == pytest.approx(0.75)


def test_one_cjk_character_costs_two_words() -> None:
    """Swapping one CJK character for two words keeps a full prompt exactly full."""
    assert PromptLength(cjk_chars=1, words=998).fits
    assert not PromptLength(cjk_chars=1, words=999).fits


def test_prompt_length_is_frozen() -> None:
    """PromptLength is an immutable value."""
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign"):
        PromptLength(1, 2).words = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("Use @image3 and @video1 with @audio2", [("image", 3), ("video", 1), ("audio", 2)]),
        ("Replicate video 1's camera; use audio 1", [("video", 1), ("audio", 1)]),
        ("IMAGE 2 then Image4 then @Video2", [("image", 2), ("image", 4), ("video", 2)]),
        ("image 1の人物を使う", [("image", 1)]),
        ("images 3, image 3rd, video1080p, myimage 2, image_2", []),
        ("the 3 provided images", []),
    ],
)
def test_finds_tags_and_natural_mentions(text: str, mentions: list[tuple[str, int]]) -> None:
    """@tags and 'image N' wording are found, case-insensitive and word-bounded, in order."""
    assert find_reference_mentions(text) == mentions
