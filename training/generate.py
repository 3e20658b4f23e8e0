"""Generate near-miss (and a few paraphrase) pairs from the topic families and the verifier's word lists.

Every generated pair is made from one text of one topic family (its question or a paraphrase) by one edit
that changes the answer, and inherits that family's topic id, so the topic split (``training/pairs.py``) keeps
it on the same side as the family it came from. The edits are the kinds of near-miss the issue lists:

* ``swap-term``      a named thing for another of its kind (the verifier's ``terms*.toml``): python -> ruby
* ``opposite``       a word for its opposite (``opposites.txt``): ascending -> descending
* ``swap-args``      the two words around to/into/from trade places: "merge develop into main" -> "main into develop"
* ``number``         a number or version changed: "port 3000" -> "port 3001", "python 3.11" -> "python 3.12"
* ``unit``           a unit for another of its kind: "kb" -> "mb", "minutes" -> "hours"
* ``scope``          a qualifier added that narrows the question: "... for each group", "... for a child"
* ``state``          a state or mode for another of the same thing: "queued" -> "blocked", "annual" -> "lifetime"
* ``identifier``     a code changed by one character: "E1234" -> "E1284", "question A2" -> "question D2"
* ``negation``       "with" -> "without"
* ``replace-word``   one content word for a content word of another family (a different subject)

and, as positives, the question with its framing reworded ("how do I ..." -> "what's the way to ...") and with
one or two framing or function words changed (``light-edit``: "how do I undo my last commit but keep ..." ->
"how can I undo the last commit and keep ...").

Deterministic: each family's edits come from ``random.Random`` seeded with the generator seed and a stable
hash of the family id, so adding a family never changes the pairs of another. Run::

    python -m training.generate            # writes training/data/generated.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERIFIER_DATA = ROOT / "aicache" / "data" / "verifier"
OUTPUT = ROOT / "training" / "data" / "generated.jsonl"
SEED = 20261203
EDITS_PER_TEXT = 3  # near-misses made from each text of a family (fewer when fewer edits apply)

# Units: each group is one kind of measure; another member of the group is another question.
UNITS = [
    ["bytes", "kb", "mb", "gb", "tb"],
    ["kilobytes", "megabytes", "gigabytes", "terabytes"],
    ["seconds", "minutes", "hours", "days", "weeks", "months", "years"],
    ["second", "minute", "hour", "day", "week", "month", "year"],
    ["milliseconds", "microseconds", "nanoseconds"],
    ["km", "miles", "meters", "feet", "inches", "cm"],
    ["kg", "pounds", "grams", "ounces"],
    ["celsius", "fahrenheit", "kelvin"],
    ["liters", "gallons", "cups", "ml"],
    ["dollars", "euros", "pounds sterling", "yen"],
]

# States and modes of one thing, and choices that are opposites only in context. The failures are of
# this kind with words no list names, so the generator writes many such sets: the model should learn that two
# values of one slot differ, not these words.
STATES = [
    ["queued", "blocked", "pending", "running", "failed", "cancelled", "stuck", "skipped"],
    ["draft", "published", "archived", "deleted", "scheduled"],
    ["open", "closed", "merged", "locked"],
    ["active", "suspended", "expired", "deactivated", "frozen"],
    ["paid", "unpaid", "refunded", "overdue", "disputed"],
    ["delivered", "in transit", "lost", "returned", "delayed"],
    ["mine", "yours", "theirs"],
    ["ours", "theirs"],
    ["lifetime", "annual", "monthly", "weekly", "free"],
    ["yearly", "monthly", "daily", "hourly"],
    ["checking", "savings", "credit", "business"],
    ["debit card", "credit card", "prepaid card", "gift card"],
    ["economy", "business class", "first class", "premium economy"],
    ["one-way", "round-trip", "multi-city"],
    ["morning", "afternoon", "evening", "night"],
    ["spring", "summer", "autumn", "winter"],
    ["beginner", "intermediate", "advanced", "expert"],
    ["adult", "child", "baby", "teenager", "senior", "pregnant woman"],
    ["cat", "dog", "rabbit", "parrot", "hamster"],
    ["cold", "flu", "fever", "cough", "migraine", "allergy"],
    ["breakfast", "lunch", "dinner", "snack"],
    ["weekday", "weekend", "holiday"],
    ["domestic", "international"],
    ["staging", "production", "development", "test"],
    ["read", "write", "execute"],
    ["major", "minor", "patch"],
    ["sync", "async"],
    ["warning", "error", "info", "debug"],
    ["success", "failure", "timeout"],
    ["tenant", "landlord", "owner"],
    ["employer", "employee", "contractor"],
    ["buyer", "seller"],
    ["husband", "wife", "partner", "parent", "child"],
    ["iphone", "android phone", "ipad", "laptop"],
    ["passport", "visa", "driving licence", "id card"],
    ["train", "bus", "plane", "ferry", "car"],
    ["hotel", "hostel", "airbnb", "campsite"],
]

SCOPES_DEV = [
    "for each group",
    "recursively in all subdirectories",
    "including hidden files",
    "ignoring case",
    "for multiple columns",
    "for every branch",
    "on a remote server",
    "inside a transaction",
    "for all users",
    "in a monorepo",
    "in a background thread",
    "for a specific date range",
    "only for the last week",
    "with a progress bar",
    "for nested objects",
    "across multiple files",
    "without root access",
    "in a single line",
    "for a large file that does not fit in memory",
    "while keeping the original order",
]
SCOPES_EVERYDAY = [
    "for a child",
    "for a family of four",
    "while pregnant",
    "in winter",
    "abroad",
    "on a weekend",
    "for international transfers",
    "with a pet",
    "on a budget",
    "for a business account",
    "after the deadline",
    "for someone over 65",
    "without a receipt",
    "for a joint account",
    "as a student",
    "during a layover",
    "with a disability",
    "for a second time",
    "in another currency",
    "on a public holiday",
]

FRAMINGS = [
    "how do i ",
    "how to ",
    "how can i ",
    "what's the best way to ",
    "what is the way to ",
    "is there a way to ",
]
_FRAMING_RE = re.compile(
    r"^(how do i|how to|how can i|what's the best way to|what is the way to|is there a way to) ", re.I
)
_ARGS_RE = re.compile(
    r"\b(?:from\s+)?(?:the\s+|a\s+|an\s+|my\s+)?([a-z][\w.+#-]*)\s+(to|into|from|onto)\s+(?:the\s+|a\s+|an\s+|my\s+)?([a-z][\w.+#-]*)\b",
    re.I,
)
_NUMBER_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)*)(?![\w.]*\d)")
_IDENT_RE = re.compile(r"\b(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{2,}\b")
_WORD_RE = re.compile(r"[a-z][a-z'-]{3,}")


def stable_hash(text: str) -> int:
    """A hash that is the same in every process and on every machine (``hash()`` is salted)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


# ---------------------------------------------------------------------------------------------------------
# The verifier's word lists, read as data (the generator does not import the verifier)


def _terms() -> dict[str, list[list[str]]]:
    """category -> list of spelling groups (one per named thing, canonical name first)."""
    out: dict[str, list[list[str]]] = {}
    for path in sorted(VERIFIER_DATA.glob("terms*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for category, body in data.items():
            if not isinstance(body, dict) or "terms" not in body:
                continue
            groups = [[name.replace("-", " "), *spellings] for name, spellings in body["terms"].items()]
            out.setdefault(category, []).extend(groups)
    return out


def _opposites() -> list[tuple[list[str], list[str]]]:
    pairs = []
    for line in (VERIFIER_DATA / "opposites.txt").read_text(encoding="utf-8").splitlines():
        if "<>" not in line or line.lstrip().startswith("#"):
            continue
        left, right = (side.strip().lstrip("~").strip() for side in line.split("<>", 1))
        pairs.append(([w.strip() for w in left.split("|")], [w.strip() for w in right.split("|")]))
    return pairs


def _stopwords() -> set[str]:
    data = tomllib.loads((VERIFIER_DATA / "words.toml").read_text(encoding="utf-8"))
    words = set()
    for key in ("function_words", "light", "negations", "exclusive"):
        words.update(w for w in data.get(key, []) if " " not in w)
    return words


def _phrase(words: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w+#-]){re.escape(words)}(?![\w+#-])", re.I)


class Editor:
    """The edits, with the word lists compiled once."""

    def __init__(self) -> None:
        self.term_groups: list[tuple[str, list[str]]] = []
        for category, groups in _terms().items():
            if len(groups) < 2:
                continue
            for group in groups:
                self.term_groups.append((category, group))
        self.by_category = {c: g for c, g in _terms().items() if len(g) >= 2}
        # Spellings of 3+ characters only: "c", "r", "go", "pl" match too much ordinary text.
        self.term_patterns = [
            (category, group, spelling, _phrase(spelling))
            for category, group in self.term_groups
            for spelling in group
            if len(spelling) >= 3
        ]
        self.opposites = [
            (word, other_side, _phrase(word))
            for left, right in _opposites()
            for side, other_side in ((left, right), (right, left))
            for word in side
            if len(word) >= 2
        ]
        self.units = [(w, g, _phrase(w)) for g in UNITS for w in g]
        self.states = [(w, g, _phrase(w)) for g in STATES for w in g]
        self.stop = _stopwords()

    # Each edit returns a changed text, or None when it does not apply.

    def swap_term(self, text: str, rng: random.Random) -> str | None:
        found = [(c, g, s, p) for c, g, s, p in self.term_patterns if p.search(text)]
        if not found:
            return None
        category, group, _spelling, pattern = rng.choice(found)
        others = [g for g in self.by_category[category] if g is not group and g[0] not in group]
        replacement = rng.choice(others)[0]
        return pattern.sub(replacement, text, count=1)

    def opposite(self, text: str, rng: random.Random) -> str | None:
        found = [(w, other, p) for w, other, p in self.opposites if p.search(text)]
        if not found:
            return None
        _word, other, pattern = rng.choice(found)
        return pattern.sub(other[0], text, count=1)

    def swap_args(self, text: str, rng: random.Random) -> str | None:
        matches = [
            m
            for m in _ARGS_RE.finditer(text)
            if m.group(1).lower() not in self.stop
            and m.group(3).lower() not in self.stop
            and m.group(1).lower() != m.group(3).lower()
        ]
        if not matches:
            return None
        m = rng.choice(matches)
        start1, end1 = m.span(1)
        start3, end3 = m.span(3)
        return text[:start1] + m.group(3) + text[end1:start3] + m.group(1) + text[end3:]

    def number(self, text: str, rng: random.Random) -> str | None:
        matches = list(_NUMBER_RE.finditer(text))
        if not matches:
            return None
        m = rng.choice(matches)
        parts = m.group(1).split(".")
        i = rng.randrange(len(parts))
        value = int(parts[i])
        parts[i] = str(rng.choice([value + 1, value + 2, value * 2 + 1, max(0, value - 1) if value > 1 else value + 3]))
        changed = ".".join(parts)
        if changed == m.group(1):
            return None
        return text[: m.start(1)] + changed + text[m.end(1) :]

    def unit(self, text: str, rng: random.Random) -> str | None:
        found = [(w, g, p) for w, g, p in self.units if p.search(text)]
        if not found:
            return None
        word, group, pattern = rng.choice(found)
        return pattern.sub(rng.choice([g for g in group if g != word]), text, count=1)

    def state(self, text: str, rng: random.Random) -> str | None:
        found = [(w, g, p) for w, g, p in self.states if p.search(text)]
        if not found:
            return None
        word, group, pattern = rng.choice(found)
        return pattern.sub(rng.choice([g for g in group if g != word]), text, count=1)

    def scope(self, text: str, rng: random.Random, domain: str) -> str | None:
        pool = SCOPES_EVERYDAY if domain == "everyday" else SCOPES_DEV
        return text.rstrip(" ?.!") + " " + rng.choice(pool) + ("?" if text.rstrip().endswith("?") else "")

    def identifier(self, text: str, rng: random.Random) -> str | None:
        matches = list(_IDENT_RE.finditer(text))
        if not matches:
            return None
        m = rng.choice(matches)
        token = m.group(0)
        i = rng.randrange(len(token))
        c = token[i]
        if c.isdigit():
            new = rng.choice([d for d in "0123456789" if d != c])
        else:
            letters = "abcdefghijklmnopqrstuvwxyz"
            new = rng.choice([x for x in letters if x != c.lower()])
            new = new.upper() if c.isupper() else new
        return text[: m.start()] + token[:i] + new + token[i + 1 :] + text[m.end() :]

    def negation(self, text: str, rng: random.Random) -> str | None:
        pattern = _phrase("with")
        if not pattern.search(text):
            return None
        return pattern.sub("without", text, count=1)

    def replace_word(self, text: str, rng: random.Random, vocabulary: list[str]) -> str | None:
        words = [m for m in _WORD_RE.finditer(text) if m.group(0).lower() not in self.stop]
        if not words or not vocabulary:
            return None
        m = rng.choice(words)
        replacement = rng.choice(vocabulary)
        if replacement.lower() == m.group(0).lower():
            return None
        return text[: m.start()] + replacement + text[m.end() :]

    def reframe(self, text: str, rng: random.Random) -> str | None:
        m = _FRAMING_RE.match(text)
        if not m:
            return None
        others = [f for f in FRAMINGS if f.strip() != m.group(1).lower()]
        return rng.choice(others) + text[m.end() :]


# Rewordings that change only framing and function words: the same question. Without them every positive of the
# data is a loose rewording and every lexically close pair a near-miss, and a model learns that overlap means
# "different" (measured: the first feature model scored "how can I undo the last commit and keep my changes"
# 0.28 against "how do I undo my last commit but keep the changes").
LIGHT = [
    (r"\bhow do i\b", "how can i"),
    (r"\bhow can i\b", "how do i"),
    (r"\bhow do you\b", "how do i"),
    (r"\bwhat's\b", "what is"),
    (r"\bwhat is\b", "what's"),
    (r"\bmy\b", "the"),
    (r"\bthe\b", "my"),
    (r"\ba\b", "the"),
    (r"\bbut\b", "and"),
    (r"\bis it possible to\b", "can i"),
    (r"\bcan i\b", "is it possible to"),
    (r"\bi want to\b", "i need to"),
    (r"\bi need to\b", "i want to"),
    (r"^", "please tell me "),
    (r"^", "quick question: "),
    (r"$", " please"),
    (r"$", ", thanks"),
    (r"^(how|what|where|why|when|can|is|do)\b", "so \\1"),
]
_LIGHT = [(re.compile(pattern, re.I), replacement) for pattern, replacement in LIGHT]


def light_edit(text: str, rng: random.Random) -> str | None:
    """The question with one or two framing or function words changed: a positive."""
    applicable = [(p, r) for p, r in _LIGHT if p.search(text)]
    if not applicable:
        return None
    rng.shuffle(applicable)
    changed = text
    for pattern, replacement in applicable[: rng.choice([1, 2])]:
        changed = pattern.sub(replacement, changed, count=1)
    return changed if changed.strip().lower() != text.strip().lower() else None


EDITS = ("swap-term", "opposite", "swap-args", "number", "unit", "state", "identifier", "negation", "scope")


def family_texts(family: dict) -> list[str]:
    return [family["question"], *family.get("paraphrases", [])]


def generate(families: Iterable[dict], seed: int = SEED) -> Iterator[dict]:
    """Yield generated pairs ``{"topic", "a", "b", "same_answer", "kind", "source"}`` for every family."""
    editor = Editor()
    families = [f for f in families if not f.get("unrelated") and f.get("question")]
    vocabulary: dict[str, set[str]] = {}
    for f in families:
        words = {w for t in family_texts(f) for w in _WORD_RE.findall(t.lower()) if w not in editor.stop}
        vocabulary.setdefault(_domain(f), set()).update(words)
    ordered = {domain: sorted(words) for domain, words in vocabulary.items()}
    for family in families:
        rng = random.Random(seed ^ stable_hash(family["id"]))
        domain = _domain(family)
        own = {w for t in family_texts(family) for w in _WORD_RE.findall(t.lower())}
        foreign = [w for w in ordered[domain] if w not in own]
        known = {t.strip().lower() for t in [*family_texts(family), *family.get("negatives", [])]}
        for text in family_texts(family):
            candidates: list[tuple[str, str]] = []
            for kind in EDITS:
                if kind == "scope":
                    changed = editor.scope(text, rng, domain)
                else:
                    changed = getattr(editor, kind.replace("-", "_"))(text, rng)
                if changed and changed.strip().lower() not in known:
                    candidates.append((kind, changed))
            specific = [c for c in candidates if c[0] != "scope"]
            rng.shuffle(specific)
            chosen = specific[: EDITS_PER_TEXT - 1]
            # One general edit per text: an added scope or a foreign word, so every family gets near-misses.
            general = rng.choice(["scope", "replace-word"])
            if general == "scope":
                chosen += [c for c in candidates if c[0] == "scope"]
            else:
                changed = editor.replace_word(text, rng, foreign)
                if changed and changed.strip().lower() not in known:
                    chosen.append(("replace-word", changed))
            for kind, changed in chosen:
                known.add(changed.strip().lower())
                yield {"topic": family["id"], "a": text, "b": changed, "same_answer": False, "kind": kind}
            reframed = editor.reframe(text, rng)
            if reframed and reframed.strip().lower() not in known:
                known.add(reframed.strip().lower())
                yield {"topic": family["id"], "a": text, "b": reframed, "same_answer": True, "kind": "reframe"}
            light = light_edit(text, rng)
            if light and light.strip().lower() not in known:
                known.add(light.strip().lower())
                yield {"topic": family["id"], "a": text, "b": light, "same_answer": True, "kind": "light-edit"}


def _domain(family: dict) -> str:
    return "everyday" if "everyday" in str(family.get("source", "")) else "developer"


def main(argv: list[str] | None = None) -> None:
    from training import pairs

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    rows = list(generate(pairs.load_families(), args.seed))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
    print(f"{len(rows)} pairs -> {args.output}: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))


if __name__ == "__main__":
    main()
