"""How long a prompt is, and which references it names.

EvoLink caps a prompt at "500 Chinese characters or 1000 English words" without saying how
mixed text counts. Our definition (also in ``docs/validation.md``):

1. The text is normalised to Unicode NFKC first. So fullwidth Latin letters and digits
   (U+FF21 "A", U+FF11 "1", ...) become ASCII and count as words, halfwidth Katakana
   (``ｶﾞ``) becomes fullwidth Katakana, and CJK compatibility ideographs become their
   unified forms. Fullwidth punctuation becomes ASCII punctuation and counts nothing.
2. **CJK characters** count one each: Han ideographs (the unified block, extensions A and
   beyond in planes 2 and 3, compatibility ideographs, and the ideographic marks U+3005 to U+3007),
   Hiragana, Katakana (with ``ー``), Bopomofo and Hangul (syllables and jamo). Only letters
   and numbers of those blocks count: CJK punctuation such as ``。、「」・`` counts nothing.
3. **Words** are maximal runs of other letters, digits and combining marks (any script);
   one apostrophe (``'`` or U+2019) or hyphen (``-``, U+2010, U+2011) between two such runs
   joins them, so ``don't`` and ``state-of-the-art`` are one word each.
4. Punctuation, symbols, emoji and whitespace count nothing.
5. The budget is shared: ``cjk_chars / 500 + words / 1000 <= 1``. Pure Chinese fits up to 500
   characters, pure English up to 1000 words, and in mixed text one CJK character costs
   two words. The comparison is done in integers, so the boundary is exact.

References are named by array order from 1: ``@image3`` (EvoLink's current tag syntax) or
natural wording such as ``image 3`` / ``Video 1`` (the original document's), case-insensitive.
A mention must not be glued to other Latin letters, digits or ``_`` on either side
(``images 3``, ``image 3rd`` and ``video1080p`` are not mentions), but may touch CJK text
(``image 1の人物`` is).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, cast

from handlers.domain.contract import PROMPT_MAX_CJK_CHARS, PROMPT_MAX_WORDS

__all__ = [
    "PromptLength",
    "ReferenceKind",
    "find_reference_mentions",
    "measure_prompt",
]

ReferenceKind = Literal["image", "video", "audio"]

# Code point ranges whose letters and numbers count as one CJK character each.
_CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x2E80, 0x2FDF),  # CJK Radicals Supplement, Kangxi Radicals
    (0x3000, 0x303F),  # CJK Symbols and Punctuation (only U+3005-3007 and a few more are letters)
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x31BF),  # Bopomofo, Hangul Compatibility Jamo, Kanbun, Bopomofo Extended
    (0x31F0, 0x31FF),  # Katakana Phonetic Extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xA960, 0xA97F),  # Hangul Jamo Extended-A
    (0xAC00, 0xD7FF),  # Hangul Syllables, Hangul Jamo Extended-B
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0xFF66, 0xFFDC),  # Halfwidth Katakana and Hangul (NFKC folds most of them away)
    (0x1B000, 0x1B16F),  # Kana Supplement, Kana Extended-A, Small Kana Extension
    (0x20000, 0x3FFFF),  # planes 2 and 3: Han extensions B to I, compatibility supplement
)
_JOINERS = frozenset("'\u2019-\u2010\u2011")
_CACHE_LIMIT = 65_536

_CJK, _WORD, _JOIN, _NONE = "c", "w", "j", " "
_MENTION = re.compile(
    r"(?<![0-9A-Za-z_])(?:@(?P<tag>image|video|audio)(?P<tag_index>[0-9]{1,6})"
    r"|(?P<word>image|video|audio)[ \t\u00a0]*(?P<word_index>[0-9]{1,6}))(?![0-9A-Za-z_])",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class PromptLength:
    """A prompt's size under the shared budget (see the module docstring)."""

    cjk_chars: int
    words: int

    @property
    def budget_used(self) -> float:
        """Fraction of the budget used: 1.0 is exactly full."""
        return self.cjk_chars / PROMPT_MAX_CJK_CHARS + self.words / PROMPT_MAX_WORDS

    @property
    def fits(self) -> bool:
        """True when ``cjk_chars / 500 + words / 1000 <= 1``, compared exactly."""
        used = self.cjk_chars * PROMPT_MAX_WORDS + self.words * PROMPT_MAX_CJK_CHARS
        return used <= PROMPT_MAX_CJK_CHARS * PROMPT_MAX_WORDS


def _in_cjk_block(code: int) -> bool:
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _classify(char: str) -> str:
    category = unicodedata.category(char)
    if char in _JOINERS:
        return _JOIN
    if category[0] not in "LNM":
        return _NONE
    return _CJK if _in_cjk_block(ord(char)) else _WORD


class _CharClasses(dict[int, str]):
    """A ``str.translate`` table mapping each code point to its class, filled on demand."""

    def __missing__(self, code: int) -> str:
        kind = _classify(chr(code))
        if len(self) < _CACHE_LIMIT:
            self[code] = kind
        return kind


_CLASSES = _CharClasses()


def _count_words(classes: str) -> int:
    """Words in a class string: runs of ``w``, less single ``j`` bridges between two runs.

    Only ``str.count`` and ``str.replace`` (C speed, even for a 64 MB prompt). Doubling each
    ``w`` keeps chained bridges (``wjwjw``) from overlapping, so ``count`` finds them all.
    """
    runs = sum(classes.count(_WORD + other) for other in (_CJK, _JOIN, _NONE))
    runs += classes.endswith(_WORD)
    bridges = classes.replace(_WORD, _WORD * 2).count(_WORD + _JOIN + _WORD)
    return runs - bridges


def measure_prompt(text: str) -> PromptLength:
    """Count CJK characters and words in ``text`` (definition in the module docstring)."""
    classes = unicodedata.normalize("NFKC", text).translate(_CLASSES)
    return PromptLength(cjk_chars=classes.count(_CJK), words=_count_words(classes))


def find_reference_mentions(text: str) -> list[tuple[ReferenceKind, int]]:
    """Every ``@image3`` tag or ``image 3`` phrase in ``text``, in order, as (kind, number)."""
    found: list[tuple[ReferenceKind, int]] = []
    for match in _MENTION.finditer(text):
        kind = match.group("tag") or match.group("word")
        index = match.group("tag_index") or match.group("word_index")
        found.append((cast(ReferenceKind, kind.lower()), int(index)))
    return found
