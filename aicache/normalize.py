"""Question normalization for the exact tier.

Two questions that differ only in the ways below are the same exact-cache key, so a near-verbatim repeat is an
exact hit without loading any model:

1. invisible format characters dropped (``visible``: zero-width spaces and joiners, byte-order marks, soft
   hyphens, direction marks; a pasted question often carries them, and they change nothing a reader sees; the
   joiner inside an emoji sequence goes too, which only merges keys of questions that render alike);
2. Unicode NFKC (full-width letters, ligatures and non-breaking spaces become their plain forms);
3. case folded (``Git`` = ``git``);
4. leading and trailing whitespace removed, inner runs of whitespace collapsed to one space;
5. trailing sentence punctuation removed (``? ! . , ; :`` and the ellipsis), repeated or not.

Only the key is normalized: the question is sent to the provider exactly as typed. A question with nothing left
after these steps is empty (``has_content``): ``" "``, ``"?"`` and ``"\u200b"`` ask nothing, so they are refused
before anything is sent or stored instead of sharing one cached answer.

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
# Format characters that are drawn (number signs of Arabic, Syriac, Kaithi written before the digits): kept.
_DRAWN_FORMAT = frozenset("\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2\U000110bd\U000110cd")


def visible(text: str) -> str:
    """``text`` without the format characters (category Cf) that render as nothing."""
    return "".join(ch for ch in text if ch in _DRAWN_FORMAT or unicodedata.category(ch) != "Cf")


def normalize_question(text: str) -> str:
    text = unicodedata.normalize("NFKC", visible(text)).casefold()
    text = _SPACES.sub(" ", text).strip()
    return _TRAILING_PUNCT.sub("", text)


def has_content(text: str) -> bool:
    """Whether ``text`` asks anything: something visible is left once it is normalized."""
    return bool(normalize_question(text))
