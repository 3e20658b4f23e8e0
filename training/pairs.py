"""The training data as labelled ordered pairs, and the topic split.

A *family* is one topic: a question, its paraphrases (same answer) and its near-misses (a different answer),
the shape of ``tests/data/dev-pairs.jsonl``. A pair is ``(a, b, label)``: ``a`` is the cached question, ``b``
the new one, ``label`` 1 when ``a``'s answer is right for ``b``. Both orders of every pair are used.

**The split is by topic, never by pair**: pairs of one topic share words, so a pair-level split would test on
near-copies of training pairs. ``split_of(topic)`` hashes the topic id (SHA-256, fixed salt) into train (70%),
calibration (15%) and test (15%). It was fixed before any result was looked at; generated pairs carry the topic
of the family they were made from, so they land on the same side.

Sources (see ``training/README.md``):

* ``tests/data/dev-pairs.jsonl``: the project's development families (developer questions);
* ``training/data/topics-*.jsonl``: hand-written families, developer and everyday (banking, travel, health...);
* ``training/data/generated.jsonl``: near-misses made from those families by ``training/generate.py``;
* ``tests/data/trap-pairs.jsonl``: hand-written a/b pairs; each pair is its own topic;
* ``training/data/pairs-*.jsonl``: hand-written a/b pairs, grouped by their ``topic``.

``training/data/independent/`` holds families and a/b pairs written by other people, who never saw the training
data: they join the calibration split only (``independent_pairs``), so the threshold is also bounded on questions
worded unlike the training data's.

``tests/data/heldout-pairs.jsonl``, ``tests/data/general-trap-pairs.jsonl`` and ``tests/data/heldout7-*`` to
``tests/data/heldout17-*`` (``HELD_OUT_FILES``) are never read here for training or calibration: ``heldout_sets()``
loads the first two for the final test only; ``benchmarks/bench_eval.py`` reads them all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "training" / "data"
TESTS_DATA = ROOT / "tests" / "data"
SPLIT_SALT = "aicache-decision-split-v1"
SPLITS = ("train", "calibration", "test")
# Never trained or calibrated on; heldout7-* to heldout17-* were written, by people who never saw the repository,
# after the shipped model and its calibration rule were fixed (training/RESULTS.md sections 10 to 22), except
# heldout13-light-edits.jsonl and heldout14-light-edits.jsonl: generate.light_edit's rewordings of those rounds'
# stored questions.
HELD_OUT_FILES = (
    "heldout-pairs.jsonl",
    "general-trap-pairs.jsonl",
    "heldout7-dev-families.jsonl",
    "heldout7-everyday-pairs.jsonl",
    "heldout7-quora-style-pairs.jsonl",
    "heldout8-dev-families.jsonl",
    "heldout8-everyday-pairs.jsonl",
    "heldout8-quora-style-pairs.jsonl",
    "heldout9-dev-families.jsonl",
    "heldout9-everyday-pairs.jsonl",
    "heldout9-quora-style-pairs.jsonl",
    "heldout10-dev-families.jsonl",
    "heldout10-everyday-pairs.jsonl",
    "heldout10-quora-style-pairs.jsonl",
    "heldout11-dev-families.jsonl",
    "heldout11-everyday-pairs.jsonl",
    "heldout11-quora-style-pairs.jsonl",
    "heldout12-dev-families.jsonl",
    "heldout12-everyday-pairs.jsonl",
    "heldout12-quora-style-pairs.jsonl",
    "heldout13-dev-families.jsonl",
    "heldout13-everyday-pairs.jsonl",
    "heldout13-quora-style-pairs.jsonl",
    "heldout13-light-edits.jsonl",
    "heldout14-dev-families.jsonl",
    "heldout14-everyday-pairs.jsonl",
    "heldout14-quora-style-pairs.jsonl",
    "heldout14-light-edits.jsonl",
    "heldout15-dev-families.jsonl",
    "heldout15-everyday-pairs.jsonl",
    "heldout15-quora-style-pairs.jsonl",
    "heldout16-dev-families.jsonl",
    "heldout16-everyday-pairs.jsonl",
    "heldout16-quora-style-pairs.jsonl",
    "heldout17-dev-families.jsonl",
    "heldout17-everyday-pairs.jsonl",
    "heldout17-quora-style-pairs.jsonl",
)
# Under training/data: families and a/b pairs written by people who never saw the training data; calibration only.
INDEPENDENT = "independent"


@dataclass(frozen=True)
class Pair:
    a: str  # the cached question
    b: str  # the new question
    label: int  # 1: a's answer is right for b
    topic: str
    role: str  # q-p, p-q, p-p, q-n, n-q, p-n, n-p, gen-<kind>, trap, cross


def split_of(topic: str) -> str:
    """train / calibration / test for a topic id: a stable hash, 70 / 15 / 15."""
    bucket = int.from_bytes(hashlib.sha256(f"{SPLIT_SALT}:{topic}".encode()).digest()[:8], "big") % 100
    return "train" if bucket < 70 else "calibration" if bucket < 85 else "test"


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_families(data_dir: Path = DATA, tests_dir: Path = TESTS_DATA) -> list[dict]:
    """Every topic family the model may learn from (dev set and the hand-written topic files)."""
    families = [dict(f, source="dev-pairs") for f in read_jsonl(tests_dir / "dev-pairs.jsonl")]
    for path in sorted(data_dir.glob("topics-*.jsonl")):
        for f in read_jsonl(path):
            families.append(dict(f, source=path.name))
    seen: set[str] = set()
    unique = []
    for f in families:
        if f.get("unrelated"):
            continue
        if f["id"] in seen:  # the same id in two files: keep the first, its topic is already placed
            continue
        seen.add(f["id"])
        unique.append(f)
    return unique


def family_pairs(family: dict) -> Iterator[Pair]:
    """Both orders of: question-paraphrase, paraphrase-paraphrase (label 1); question or paraphrase vs near-miss."""
    topic, q = family["id"], family["question"]
    paraphrases = list(family.get("paraphrases", []))
    for p in paraphrases:
        yield Pair(q, p, 1, topic, "q-p")
        yield Pair(p, q, 1, topic, "p-q")
    for i, p in enumerate(paraphrases):
        for j, r in enumerate(paraphrases):
            if i != j:
                yield Pair(p, r, 1, topic, "p-p")
    for n in family.get("negatives", []):
        yield Pair(q, n, 0, topic, "q-n")
        yield Pair(n, q, 0, topic, "n-q")
        for p in paraphrases:
            yield Pair(p, n, 0, topic, "p-n")
            yield Pair(n, p, 0, topic, "n-p")


def trap_topic(row: dict) -> str:
    a, b = sorted((row["a"].strip().lower(), row["b"].strip().lower()))
    return "trap-" + hashlib.sha256(f"{a}\n{b}".encode()).hexdigest()[:12]


def trap_pairs(rows: Iterable[dict], role: str = "trap") -> Iterator[Pair]:
    for row in rows:
        topic, label = row.get("topic") or trap_topic(row), int(bool(row["same_answer"]))
        kind = row.get("kind")
        yield Pair(row["a"], row["b"], label, topic, f"{role}-{kind}" if kind else role)
        yield Pair(row["b"], row["a"], label, topic, f"{role}-{kind}" if kind else role)


def all_pairs(data_dir: Path = DATA, tests_dir: Path = TESTS_DATA) -> list[Pair]:
    """Every labelled pair of the training data, before the split (heldout files excluded)."""
    out: list[Pair] = []
    for family in load_families(data_dir, tests_dir):
        out.extend(family_pairs(family))
    generated = data_dir / "generated.jsonl"
    if generated.is_file():
        out.extend(trap_pairs(read_jsonl(generated), role="gen"))
    for path in [tests_dir / "trap-pairs.jsonl", *sorted(data_dir.glob("pairs-*.jsonl"))]:
        if path.is_file():
            out.extend(trap_pairs(read_jsonl(path)))
    # A text that is also in a held-out file (the same question written twice) stays out of training entirely.
    return without_held_out(out, tests_dir)


def without_held_out(data: Iterable[Pair], tests_dir: Path = TESTS_DATA) -> list[Pair]:
    held = held_out_texts(tests_dir)
    return dedupe(p for p in data if _fold(p.a) not in held and _fold(p.b) not in held)


def independent_families(data_dir: Path = DATA) -> list[dict]:
    """The independent writers' families, their ids marked (``independent:FILE:ID``) so they never share a topic
    with the training data or with another file's."""
    return [
        dict(row, id=f"independent:{path.stem}:{row['id']}")
        for path in sorted((data_dir / INDEPENDENT).glob("*.jsonl"))
        for row in read_jsonl(path)
        if "question" in row
    ]


def independent_pairs(data_dir: Path = DATA) -> list[Pair]:
    """Every labelled pair of ``training/data/independent/`` (families and a/b pairs), for calibration only."""
    out = [p for family in independent_families(data_dir) for p in family_pairs(family)]
    for path in sorted((data_dir / INDEPENDENT).glob("*.jsonl")):
        rows = [row for row in read_jsonl(path) if "a" in row]
        marked = [row | {"topic": f"independent:{path.stem}:{row.get('topic') or trap_topic(row)}"} for row in rows]
        out.extend(trap_pairs(marked))
    return dedupe(out)


def held_out_texts(tests_dir: Path = TESTS_DATA, data_dir: Path = DATA) -> set[str]:
    """Every text the model must never train on: the held-out files' and the independent writers'."""
    files = [tests_dir / name for name in HELD_OUT_FILES] + sorted((data_dir / INDEPENDENT).glob("*.jsonl"))
    texts: set[str] = set()
    for path in files:
        for row in read_jsonl(path):
            for key in ("question", "a", "b"):
                if row.get(key):
                    texts.add(_fold(row[key]))
            for key in ("paraphrases", "negatives"):
                texts.update(_fold(t) for t in row.get(key, []))
    return texts


def dedupe(pairs: Iterable[Pair]) -> list[Pair]:
    """One pair per (a, b) after case and space folding; a pair labelled both ways is dropped."""
    labels: dict[tuple[str, str], set[int]] = {}
    first: dict[tuple[str, str], Pair] = {}
    for p in pairs:
        key = (_fold(p.a), _fold(p.b))
        if key[0] == key[1]:
            continue
        labels.setdefault(key, set()).add(p.label)
        first.setdefault(key, p)
    return [p for key, p in first.items() if len(labels[key]) == 1]


def _fold(text: str) -> str:
    return " ".join(text.lower().split()).rstrip("?!.,;: ")


def split(pairs: Iterable[Pair]) -> dict[str, list[Pair]]:
    out: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for p in pairs:
        out[split_of(p.topic)].append(p)
    return out


def heldout_sets(tests_dir: Path = TESTS_DATA) -> dict[str, list[Pair]]:
    """The pure test sets, pairwise (store a, ask b): heldout families as question -> paraphrase / near-miss, and
    general-trap pairs as written."""
    heldout = [f for f in read_jsonl(tests_dir / "heldout-pairs.jsonl") if not f.get("unrelated")]
    return {
        "heldout": [p for f in heldout for p in family_pairs(f) if p.role in ("q-p", "q-n")],
        "general-trap": [
            Pair(r["a"], r["b"], int(bool(r["same_answer"])), trap_topic(r), "trap")
            for r in read_jsonl(tests_dir / "general-trap-pairs.jsonl")
        ],
    }


def write_test_split(out: Path, data_dir: Path = DATA, split: str = "test") -> list[Path]:
    """The test topics of the hand-written families, developer and everyday, as two topic files in ``out`` (for
    ``benchmarks/bench_eval.py`` and ``benchmarks/learn_scenario.py``: topics nothing was trained or calibrated on).
    ``split="calibration"``: the topics the shipped threshold was chosen on (never trained on)."""
    written = []
    for kind in ("dev", "everyday"):
        rows = [row for path in sorted(data_dir.glob(f"topics-{kind}-*.jsonl")) for row in read_jsonl(path)]
        target = out / f"{split}-split-{kind}.jsonl"
        target.write_text("".join(json.dumps(r) + "\n" for r in rows if split_of(r["id"]) == split), encoding="utf-8")
        written.append(target)
    return written


def write_light_edits(out: Path, data_dir: Path = DATA, split: str = "test") -> Path:
    """The generated light edits (framing or function words changed: positives) of one split's topics, as a/b
    pairs in ``out``: how many near-verbatim rewordings the decision serves, for ``benchmarks/bench_eval.py``."""
    rows = [r for r in read_jsonl(data_dir / "generated.jsonl") if r["kind"] == "light-edit"]
    target = out / f"{split}-split-light-edits.jsonl"
    pairs = [{"a": r["a"], "b": r["b"], "same_answer": True} for r in rows if split_of(r["topic"]) == split]
    target.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    return target
