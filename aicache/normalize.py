"""Question normalization for the exact tier.

Two questions that differ only in the ways below are the same exact-cache key, so a near-verbatim repeat is an
exact hit without loading any model:

1. Unicode NFKC (full-width letters, ligatures and non-breaking spaces become their plain forms);
2. case folded (``Git`` = ``git``);
3. leading and trailing whitespace removed, inner runs of whitespace collapsed to one space;
4. trailing sentence punctuation removed (``? ! . , ; :`` and the ellipsis), repeated or not.

Nothing else: no stemming, no stop words, no reordering. "sort ascending" and "sort descending" stay apart here;
the semantic tier and its verifier decide about anything looser.
"""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")
_TRAILING_PUNCT = re.compile(r"[\s?!.,;:\u2026\uff1f\uff01\u3002]+$")


def normalize_question(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _SPACES.sub(" ", text).strip()
    return _TRAILING_PUNCT.sub("", text)
