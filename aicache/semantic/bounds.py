"""Bounds on a number: "over $150,000", "at least 18", "$250 or more", "before 1991".

Two questions that put the same number as a bound on opposite sides ("income under $150,000" / "income over
$150,000") ask about the two sides of one threshold, so their answers differ whatever else they share. Nothing
learned sees it: the words around the number are the same, and the embeddings of the pair are near-identical.
Like different numbers, this is exact, so it is a veto (``verify.exact_differences``). The comparison words
below are grammar, a closed class, not a list of topics: which side a bound is on is all they say.
"""

from __future__ import annotations

import re
from functools import lru_cache

ABOVE, BELOW = ">", "<"

# "over 65", "more than $250", "at least 18", "after 4 p.m.": the bound's words come before the number.
_BEFORE_NUMBER = {
    ABOVE: (
        "over", "above", "more than", "greater than", "higher than", "larger than", "bigger than", "older than",
        "longer than", "later than", "after", "exceeding", "at least", "no less than", "not less than", "since",
    ),
    BELOW: (
        "under", "below", "less than", "fewer than", "lower than", "smaller than", "younger than", "shorter than",
        "earlier than", "before", "at most", "no more than", "not more than", "up to", "until", "within",
    ),
}  # fmt: skip
# "$250 or more", "65 and over", "18+", "came in $20,000 under (the asking price)": after it.
_AFTER_NUMBER = {
    ABOVE: (
        "or more", "or above", "or over", "or older", "or greater", "or higher", "or later", "and over",
        "and above", "and up", "and older", "+", "over", "above", "more", "higher",
    ),
    BELOW: (
        "or less", "or fewer", "or under", "or below", "or younger", "or lower", "or earlier", "and under",
        "and below", "and younger", "under", "below", "less", "fewer", "lower",
    ),
}  # fmt: skip
_NUMBER = r"[$€£¥]?\s?(\d[\d,]*(?:\.\d+)?\s?(?:k|m|%|percent)?)"


def _phrases(words: tuple[str, ...]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True))


_PATTERNS = [
    *((re.compile(rf"\b(?:{_phrases(words)})\s+{_NUMBER}", re.I), side) for side, words in _BEFORE_NUMBER.items()),
    *((re.compile(rf"{_NUMBER}\s*(?:{_phrases(words)})", re.I), side) for side, words in _AFTER_NUMBER.items()),
]


@lru_cache(maxsize=4096)
def bounds(text: str) -> dict[str, str]:
    """Each number the text bounds on one side only, written without separators, and that side."""
    sides: dict[str, set[str]] = {}
    for pattern, side in _PATTERNS:
        for match in pattern.finditer(text):
            sides.setdefault(re.sub(r"[,\s]", "", match.group(1).lower()), set()).add(side)
    return {number: found.pop() for number, found in sides.items() if len(found) == 1}


def opposite_bounds(query: str, candidate: str) -> list[str]:
    """The numbers the two texts bound on opposite sides ("150000" for "under $150,000" / "over $150,000")."""
    ours, theirs = bounds(query), bounds(candidate)
    return sorted(number for number in ours.keys() & theirs.keys() if ours[number] != theirs[number])
