"""Question normalization for the exact tier.

Two questions that differ only in the ways below are the same exact-cache key, so a near-verbatim repeat is an
exact hit without loading any model:

1. invisible format characters dropped (``visible``: zero-width spaces and joiners, byte-order marks, soft
   hyphens, direction marks; a pasted question often carries them, and they change nothing a reader sees; the
   joiner inside an emoji sequence goes too, which only merges keys of questions that render alike);
2. Unicode NFKC (full-width letters, ligatures and non-breaking spaces become their plain forms);
3. case folded (``Git`` = ``git``);
4. leading and trailing whitespace removed, inner runs of whitespace collapsed to one space;
5. trailing sentence punctuation removed (``? ! . , ; :`` and the ellipsis), repeated or not;
6. English courtesy around the request removed (``_COURTESY``): a greeting, "quick question:", "please tell me"
   or a bare "please" before it; "please" after it, or "thanks" / "thank you" set off from it by punctuation;
   "please" after "can you" and its kin. "hey, how do I undo the last commit? thanks!" is "how do i undo the last
   commit". These words ask for nothing, so the answer cannot depend on them; "thanks" with no comma before it
   stays ("how do you say thank you"), and a question that is nothing but courtesy keeps its words.

Only the key is normalized: the question is sent to the provider exactly as typed. A question with nothing left
after these steps is empty (``has_content``): ``" "``, ``"?"`` and ``"\u200b"`` ask nothing, so they are refused
before anything is sent or stored instead of sharing one cached answer.

Nothing else: no stemming, no stop words, no synonyms, no reordering. "sort ascending" and "sort descending" stay
apart here; the semantic tier and its decision judge anything looser.
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
# Step 6 (courtesy), on casefolded text whose trailing punctuation is gone. Thanks needs punctuation before it:
# "translate thanks" asks to translate the word.
_COURTESY_BEFORE = re.compile(
    r"^(?:(?:hi|hey|hello)(?: there)?[,!.:;-]*\s+|quick question\s*[:,;.!-]+\s*|please tell me\s+|please[,:]?\s+)"
)
_COURTESY_AFTER = re.compile(
    r"(?:[\s,;.!?]+(?:please|pls|plz)"
    r"|[,;.!?]\s*(?:thanks|thank you|thx|ty|cheers)(?: so much| a lot| very much| in advance)?)$"
)
_PLEASE_AFTER_YOU = re.compile(r"\b((?:can|could|would|will) you) please\b")
# Format characters that are drawn (number signs of Arabic, Syriac, Kaithi written before the digits): kept.
_DRAWN_FORMAT = frozenset("\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2\U000110bd\U000110cd")


def visible(text: str) -> str:
    """``text`` without the format characters (category Cf) that render as nothing."""
    return "".join(ch for ch in text if ch in _DRAWN_FORMAT or unicodedata.category(ch) != "Cf")


def normalize_question(text: str) -> str:
    text = unicodedata.normalize("NFKC", visible(text)).casefold()
    text = _TRAILING_PUNCT.sub("", _SPACES.sub(" ", text).strip())
    return _without_courtesy(text)


def _without_courtesy(text: str) -> str:
    """``text`` without the courtesy of step 6, repeated until none is left; unchanged if nothing else is."""
    while True:
        bare = _PLEASE_AFTER_YOU.sub(r"\1", text)
        bare = _TRAILING_PUNCT.sub("", _COURTESY_AFTER.sub("", _COURTESY_BEFORE.sub("", bare)))
        if bare == text or not bare:
            return text
        text = bare


def has_content(text: str) -> bool:
    """Whether ``text`` asks anything: something visible is left once it is normalized."""
    return bool(normalize_question(text))
