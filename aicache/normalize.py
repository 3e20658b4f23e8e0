"""Question normalization for the exact tier.

Two questions that differ only in the ways below are the same exact-cache key, so a near-verbatim repeat is an
exact hit without loading any model:

1. Unicode NFKC (full-width letters, ligatures and non-breaking spaces become their plain forms);
2. case folded (``Git`` = ``git``);
3. leading and trailing whitespace removed, inner runs of whitespace collapsed to one space;
4. trailing sentence punctuation removed (``? ! . , ; :`` and the ellipsis), repeated or not.

A question with nothing left after these steps, once invisible format characters (zero-width spaces, joiners,
byte-order marks) are dropped as well, is empty (``has_content``): ``" "``, ``"?"`` and ``"\u200b"`` ask
nothing, so they are refused before anything is sent or stored instead of sharing one cached answer.

Nothing else: no stemming, no stop words, no reordering. "sort ascending" and "sort descending" stay apart here;
the semantic tier and its verifier decide about anything looser.
"""

from __future__ import annotations

import re
import unicodedata

EMPTY_QUESTION = (
    "nothing to ask: the question is empty (only spaces, punctuation or invisible characters); "
    "give a question, or pipe text into aicache ask"
)
_SPACES = re.compile(r"\s+")
_TRAILING_PUNCT = re.compile(r"[\s?!.,;:\u2026\uff1f\uff01\u3002]+$")


def normalize_question(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _SPACES.sub(" ", text).strip()
    return _TRAILING_PUNCT.sub("", text)


def has_content(text: str) -> bool:
    """Whether ``text`` asks anything: something visible is left once it is normalized."""
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return bool(normalize_question(visible))
