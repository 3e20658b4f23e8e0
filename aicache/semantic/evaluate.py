"""``aicache eval``: how safe is the semantic tier on labelled questions?

Protocol, the same for every file format:

1. Every stored question gets an answer of its own, in a fresh cache built with the current settings.
2. Each probe is looked up. A *paraphrase* must be served its own question's answer (another question's answer
   is a wrong answer); a *negative* (a near-miss whose correct answer differs) and an *unrelated* question must
   be served nothing. A probe whose text is, once normalised, another stored question is a *repeat*: it is owed
   that question's answer (the exact tier serves it), so serving it is not a wrong answer.
3. Counts become rates with Wilson 95% intervals, and each wrong-answer rate also gets its one-sided 95%
   Clopper–Pearson upper bound (``stats.upper_bound``), overall and per category. ``sweep=True`` repeats step 2
   at every operating point of the decision (``sweep_points``) on the same embeddings.

``pairwise=True`` is the protocol of public pair suites: each probe is compared with its own stored question
only (store ``a``, ask ``b``), as if the cache held nothing else; it runs in memory.

``load_pairs`` reads two JSONL shapes: the dev-set rows (``question``, ``paraphrases``, ``negatives``, optional
``unrelated`` and ``category``) and plain pairs (``{"a": ..., "b": ..., "same_answer": true|false}``: ``a`` is
stored, and ``b`` must be served ``a``'s answer when ``same_answer`` is true and nothing otherwise). Either may
give the stored question's answer (``"answer": "..."``): it is stored with its vector, as ``aicache ask`` stores
an answer, and the decision that reads cached answers judges it; a question stored without one gets an
answer of its own (``answer N``) and no answer vector, and is judged on the questions alone. Pairs may
also come as public pair suites write them, in JSONL or in a CSV or TSV file with a header row: ``question1`` /
``question2`` / ``is_duplicate`` (Quora), ``sentence1`` / ``sentence2`` / ``label`` (PAWS and the like), the
label true or false, 1 or 0.

Scoring (``score``) does not know how a lookup is made: it takes a function from a question to what was served.
Two lookups exist:

* ``StoreCache``, the real thing: the questions are stored in a fresh aicache store under a temporary home
  (SQLite, vectors, HNSW index file), and each probe goes through the exact tier and ``tier.lookup``, as
  ``aicache ask`` would. The user's own store and index are never touched. This gives the main figures.
* ``InMemoryCache``, the fast one for sweeps, pairwise runs and the cosine baseline: every text is embedded once;
  the exact tier is ``normalize_question`` equality; stored questions are ranked by brute-force cosine (exact,
  like the SQLite scan the semantic tier uses for partitions of this size); the candidates reaching the
  decision's floor go to the decision (``decide.py``), which serves the one it is surest of, as the tier does.

The core never prints: ``progress(done, total)`` is called as probes are scored.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicache.errors import UsageError

if TYPE_CHECKING:
    from aicache.config import Settings
    from aicache.semantic.decide import Decision, ModelDecision

SCHEMA = "aicache.eval/2"
SWEEP: tuple[float, ...] = tuple(round(0.50 + 0.05 * i, 2) for i in range(10))  # 0.50 .. 0.95
Z95 = 1.959963984540054  # two-sided 95% normal quantile, for Wilson intervals

PARAPHRASE, NEGATIVE, UNRELATED, REPEAT = "paraphrase", "negative", "unrelated", "repeat"
MODEL_SWEEP: tuple[float, ...] = (*(round(0.05 * i, 2) for i in range(1, 19)), 0.92, 0.94, 0.96, 0.97, 0.98, 0.99)

Progress = Callable[[int, int], None]


# ---------------------------------------------------------------------------------------------------------
# The evaluation set


@dataclass(frozen=True)
class Probe:
    """One question to look up, and what it must be served (an index into ``EvalSet.stored``, or nothing)."""

    text: str
    kind: str  # PARAPHRASE | NEGATIVE | UNRELATED
    expected: int | None
    category: str = ""


@dataclass(frozen=True)
class EvalSet:
    """Questions to store (each with its own answer) and probes to look up, read by ``load_pairs``."""

    source: str
    stored: tuple[str, ...]
    probes: tuple[Probe, ...]
    pairs: tuple[int, ...] = ()  # per probe: the stored question it was written against (for --pairwise)
    answers: tuple[str | None, ...] = ()  # per stored question: its answer, when the file gives one


class _SetBuilder:
    """Collects rows into an ``EvalSet``; a question stored twice keeps its first answer."""

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.answers: list[str | None] = []
        self.index: dict[str, int] = {}
        self.probes: list[Probe] = []
        self.pairs: list[int] = []

    def probe(self, probe: Probe, against: int) -> None:
        self.probes.append(probe)
        self.pairs.append(against)

    def store(self, question: str, answer: str | None = None) -> int:
        if question not in self.index:
            self.index[question] = len(self.stored)
            self.stored.append(question)
            self.answers.append(answer)
        return self.index[question]

    def add_row(self, row: Mapping[str, Any], where: str) -> None:
        category = _text(row.get("category", ""), f"{where}: category")
        row = _as_pair(row, where)
        if "a" in row or "b" in row:
            self._add_pair(row, category, where)
        elif "question" in row:
            self._add_question(row, category, where)
        else:
            raise UsageError(f"{where}: expected a 'question' row or an 'a'/'b' pair")

    def _add_question(self, row: Mapping[str, Any], category: str, where: str) -> None:
        question = _text(row["question"], f"{where}: question", required=True)
        if row.get("unrelated"):
            self.probe(Probe(question, UNRELATED, None, category or UNRELATED), -1)
            return
        stored = self.store(question, _answer(row, where))
        for text in _texts(row.get("paraphrases", []), f"{where}: paraphrases"):
            self.probe(Probe(text, PARAPHRASE, stored, category), stored)
        for text in _texts(row.get("negatives", []), f"{where}: negatives"):
            self.probe(Probe(text, NEGATIVE, None, category), stored)

    def _add_pair(self, row: Mapping[str, Any], category: str, where: str) -> None:
        same = row["same_answer"]
        stored = self.store(row["a"], _answer(row, where))
        self.probe(Probe(row["b"], PARAPHRASE if same else NEGATIVE, stored if same else None, category), stored)


SAMPLE_SEED = 20261204  # --sample draws the same rows of a file every run
# A pair's field names, as (a, b, label): aicache's own, then public pair suites' (Quora's question pairs; PAWS
# and other sentence-pair sets).
PAIR_FIELDS = (
    ("a", "b", "same_answer"),
    ("question1", "question2", "is_duplicate"),
    ("sentence1", "sentence2", "label"),
)
_LABELS = {"1": True, "0": False, "true": True, "false": False}


def _as_pair(row: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """A pair, under any of ``PAIR_FIELDS``' names, checked and renamed to (``a``, ``b``, ``same_answer`` a bool);
    any other row as it is. A CSV or TSV file's labels arrive as text: "true", "1". Errors name the file's own
    field (``question2``), the one the user can find."""
    for a, b, label in PAIR_FIELDS:
        if a in row or b in row:
            value = row.get(label)
            same = _LABELS.get(str(value).strip().lower()) if isinstance(value, (bool, int, str)) else None
            if same is None:
                raise UsageError(f"{where}: {label} must be true or false, 1 or 0 (got {value!r})")
            first = _text(row.get(a), f"{where}: {a}", required=True)
            pair = {"a": first, "b": _text(row.get(b), f"{where}: {b}", required=True), "same_answer": same}
            return pair | ({"answer": row["answer"]} if "answer" in row else {})
    return row


def _answer(row: Mapping[str, Any], where: str) -> str | None:
    """The stored question's answer, if the row gives one."""
    return _text(row["answer"], f"{where}: answer", required=True) if row.get("answer") is not None else None


def _text(value: Any, what: str, *, required: bool = False) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise UsageError(f"{what} must be {'a non-empty' if required else 'a'} string")
    return value


def _texts(values: Any, what: str) -> list[str]:
    if not isinstance(values, list):
        raise UsageError(f"{what} must be a list of strings")
    return [_text(v, what, required=True) for v in values]


def load_pairs(path: Path, sample: int | None = None) -> EvalSet:
    """Read a JSONL file of dev-set rows and/or pairs, or a CSV or TSV file of pairs (by its suffix). Raises
    ``UsageError`` on a malformed line, naming it. ``sample``: keep that many rows, drawn with a fixed seed (the
    same rows every run), in file order; every line is still parsed, only the rows drawn are checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    rows = list(_table_rows(text, path) if path.suffix.lower() in (".csv", ".tsv") else _jsonl_rows(text, path))
    source = str(path)
    if sample is not None and sample < len(rows):
        import random

        kept = sorted(random.Random(SAMPLE_SEED).sample(range(len(rows)), sample))
        source += f" (a seeded sample of {sample:,} of its {len(rows):,} rows)"
        rows = [rows[i] for i in kept]
    builder = _SetBuilder()
    for row, where in rows:
        builder.add_row(row, where)
    if not builder.stored or not builder.probes:
        raise UsageError(f"{path}: nothing to evaluate (it needs questions to store and questions to look up)")
    answers = tuple(builder.answers) if any(a is not None for a in builder.answers) else ()
    return EvalSet(source, tuple(builder.stored), tuple(builder.probes), tuple(builder.pairs), answers)


def _jsonl_rows(text: str, path: Path) -> Iterator[tuple[Mapping[str, Any], str]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise UsageError(f"{where}: expected a JSON object")
        yield row, where


def _table_rows(text: str, path: Path) -> Iterator[tuple[Mapping[str, Any], str]]:
    """Rows of a CSV or TSV file with a header row; a quoted field may span lines (Quora's file has some)."""
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        for row in reader:
            yield {name: value for name, value in row.items() if name is not None}, f"{path.name}:{reader.line_num}"
    except csv.Error as exc:
        raise UsageError(f"{path.name}:{reader.line_num}: not {path.suffix[1:].upper()} ({exc})") from None


def _owed_repeats(evalset: EvalSet) -> EvalSet:
    """Probes that repeat another stored question are owed that question's answer (store-all protocol only).

    Pair files often reuse a question: the ``b`` of one pair is the ``a`` of another. Stored, it is served its
    own answer by the exact tier, which is right, not a wrong answer to the pair that asked it as a near-miss.
    """
    from aicache.normalize import normalize_question

    stored = {normalize_question(q): i for i, q in reversed(list(enumerate(evalset.stored)))}
    probes = []
    for probe in evalset.probes:
        owner = stored.get(normalize_question(probe.text))
        if owner is not None and owner != probe.expected:
            probe = Probe(probe.text, REPEAT, owner, probe.category)
        probes.append(probe)
    return EvalSet(evalset.source, evalset.stored, tuple(probes), evalset.pairs, evalset.answers)


# ---------------------------------------------------------------------------------------------------------
# Scores


def wilson(count: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``count`` successes out of ``total``; (0, 1) when there were no trials."""
    if total == 0:
        return 0.0, 1.0
    p = count / total
    centre = p + z * z / (2 * total)
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    denominator = 1 + z * z / total
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


@dataclass(frozen=True)
class Rate:
    """``count`` out of ``total``, with its Wilson 95% interval."""

    count: int
    total: int

    @property
    def rate(self) -> float:
        return self.count / self.total if self.total else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.count, self.total)

    @property
    def upper(self) -> float:
        """One-sided 95% Clopper–Pearson upper bound: what a wrong-answer rate is budgeted on."""
        from aicache import stats

        return stats.upper_bound(self.count, self.total)

    def to_json(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "count": self.count,
            "total": self.total,
            "rate": self.rate,
            "low": low,
            "high": high,
            "upper95": self.upper,
        }


@dataclass(frozen=True)
class Scores:
    """The four figures that say whether a semantic cache is useful and safe."""

    paraphrases_served: Rate  # the right answer served to a paraphrase
    paraphrases_wrong: Rate  # another question's answer served to a paraphrase
    negatives_wrong: Rate  # any answer served to a near-miss
    unrelated_wrong: Rate  # any answer served to an unrelated question
    repeats_wrong: Rate = Rate(0, 0)  # a repeat of a stored question served another question's answer
    # put to the LLM judge (gray-zone refusals, ``judge.py``): a paraphrase whose own question's answer it was
    # asked about (a judge that is always right serves it), a near-miss it was asked about at all (each YES is
    # a wrong answer)
    paraphrases_judged: Rate = Rate(0, 0)
    negatives_judged: Rate = Rate(0, 0)

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name).to_json() for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Served:
    """What one lookup served: a stored question's index (or nothing), and the best similarity seen."""

    entry: int | None
    similarity: float
    asked: tuple[int, ...] = ()  # the stored questions the LLM judge was (or would be) asked about, in order


Lookup = Callable[[str, int], Served]


@dataclass
class _Tally:
    served: int = 0
    wrong: int = 0
    total: int = 0
    judged: int = 0  # put to the judge: about its own question's answer (paraphrases, repeats), or at all


def _count(probe: Probe, served: Served, tally: _Tally) -> None:
    tally.total += 1
    if served.asked and (probe.kind not in (PARAPHRASE, REPEAT) or probe.expected in served.asked):
        tally.judged += 1
    if served.entry is None:
        return
    if probe.kind in (PARAPHRASE, REPEAT) and served.entry == probe.expected:
        tally.served += 1
    else:
        tally.wrong += 1


def _scores(tallies: Mapping[str, _Tally]) -> Scores:
    para, neg, unrel, repeat = (tallies.get(kind, _Tally()) for kind in (PARAPHRASE, NEGATIVE, UNRELATED, REPEAT))
    return Scores(
        paraphrases_served=Rate(para.served, para.total),
        paraphrases_wrong=Rate(para.wrong, para.total),
        negatives_wrong=Rate(neg.wrong, neg.total),
        unrelated_wrong=Rate(unrel.wrong, unrel.total),
        repeats_wrong=Rate(repeat.wrong, repeat.total),
        paraphrases_judged=Rate(para.judged, para.total),
        negatives_judged=Rate(neg.judged, neg.total),
    )


def score(
    evalset: EvalSet, lookup: Lookup, progress: Callable[[], None] | None = None
) -> tuple[Scores, tuple[tuple[str, Scores], ...]]:
    """Look every probe up and count; returns the overall scores and the scores of each category.

    ``lookup(text, i)`` gets the probe's text and its position in ``evalset.probes`` (pairwise lookups need it).
    """
    overall: dict[str, _Tally] = {}
    by_category: dict[str, dict[str, _Tally]] = {}
    for i, probe in enumerate(evalset.probes):
        served = lookup(probe.text, i)
        _count(probe, served, overall.setdefault(probe.kind, _Tally()))
        if probe.category:
            _count(probe, served, by_category.setdefault(probe.category, {}).setdefault(probe.kind, _Tally()))
        if progress is not None:
            progress()
    categories = tuple((name, _scores(tallies)) for name, tallies in sorted(by_category.items()))
    return _scores(overall), categories


# ---------------------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class SweepPoint:
    threshold: float
    scores: Scores

    def to_json(self) -> dict[str, Any]:
        return {"threshold": self.threshold, **self.scores.to_json()}


@dataclass(frozen=True)
class EvalReport:
    """Everything ``aicache eval`` measured; ``to_json`` is its versioned machine-readable shape."""

    source: str
    method: str  # how lookups were made (see ``InMemoryCache``)
    model: str  # embedding model id
    decision: str  # which hit decision served (``Decision.name``)
    threshold: float  # its operating point
    floor: float  # the cosine similarity a candidate needed
    pairwise: bool
    stored: int
    probes: int
    overall: Scores
    categories: tuple[tuple[str, Scores], ...] = ()
    sweep: tuple[SweepPoint, ...] = ()
    seconds: float = 0.0
    schema: str = field(default=SCHEMA)
    answer_threshold: float | None = None  # the answer model's, for entries stored with their answer
    judge: JudgeReport | None = None  # how the LLM judge took part; None for the cosine baseline (no gray zone)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "source": self.source,
            "method": self.method,
            "model": self.model,
            "decision": self.decision,
            "threshold": self.threshold,
            "answer_threshold": self.answer_threshold,
            "floor": self.floor,
            "pairwise": self.pairwise,
            "stored": self.stored,
            "probes": self.probes,
            "seconds": round(self.seconds, 3),
            "overall": self.overall.to_json(),
            "categories": {name: scores.to_json() for name, scores in self.categories},
            "sweep": [point.to_json() for point in self.sweep],
            "judge": None if self.judge is None else self.judge.to_json(),
        }


@dataclass(frozen=True)
class JudgeReport:
    """The LLM judge in an eval: ``model`` when it ruled (``--judge``), None when the report only counts what it
    would have been asked; ``gray_zone``: how far below the operating point (None: the rules' own gray zone)."""

    model: str | None
    gray_zone: float | None
    max_candidates: int
    unanswered: int = 0  # rulings that were neither YES nor NO (a failure, a hedge): counted as NO

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def best_safe_point(sweep: Iterable[SweepPoint], max_wrong: float = 0.01) -> SweepPoint | None:
    """The sweep point serving most paraphrases while the upper bound on wrong answers stays at or under
    ``max_wrong`` for negatives and unrelated questions (and paraphrases' wrong answers at or under it as a rate);
    None if no point qualifies."""
    safe = [
        p
        for p in sweep
        if (p.scores.negatives_wrong.total == 0 or p.scores.negatives_wrong.upper <= max_wrong)
        and (p.scores.unrelated_wrong.total == 0 or p.scores.unrelated_wrong.upper <= max_wrong)
        and p.scores.paraphrases_wrong.rate <= max_wrong
    ]
    return max(safe, key=lambda p: (p.scores.paraphrases_served.rate, -p.threshold), default=None)


def sweep_points(decision: Decision) -> tuple[float, ...]:
    """The operating points a sweep visits: probabilities for a model, cosine similarities otherwise."""
    return MODEL_SWEEP if decision.name.startswith("model") else SWEEP


# ---------------------------------------------------------------------------------------------------------
# Lookups


@dataclass(frozen=True)
class JudgePlan:
    """How the LLM judge takes part in an eval. Without ``settings`` (the default) nobody is asked, and the report
    counts the gray-zone refusals a judge would be asked about; with them (``--judge``) the configured judge rules."""

    max_candidates: int = 1
    settings: Settings | None = None
    unanswered: list[str] = field(default_factory=list)  # replies neither YES nor NO: failures, hedges

    def accepts(self, question: str, cached: str, answer: str | None) -> bool:
        from aicache.semantic import judge

        if self.settings is None:
            return False
        ruling = judge.rule(self.settings, question, cached, answer or "")
        self.heard(ruling.reply)
        return ruling.accepted

    def heard(self, reply: str) -> None:
        from aicache.semantic.judge import said

        if self.settings is not None and said(reply) is None:
            self.unanswered.append(reply)


NO_JUDGE = JudgePlan()


class InMemoryCache:
    """The eval set's questions embedded once, looked up the way the semantic tier looks them up.

    Brute-force cosine over all stored questions replaces the HNSW index (exact, and an eval set is small);
    the exact tier is ``normalize_question`` equality; candidates reaching the decision's floor are judged, and
    the accepted one the decision is surest of is served. Pairwise, a probe sees its own stored question only.
    """

    def __init__(
        self,
        evalset: EvalSet,
        ranked: Mapping[str, list[tuple[int, float]]],
        own: Sequence[float],
        model: str,
        vectors: tuple[Any, Mapping[str, Any]] | None = None,
        unread: frozenset[str] = frozenset(),
        answers: Sequence[Any] = (),
    ) -> None:
        from aicache.normalize import normalize_question

        self.evalset = evalset
        self.stored = evalset.stored
        self.ranked = ranked  # probe text -> best stored questions with their similarity, best first
        self.own = own  # per probe: similarity to the stored question it was written against
        self.model = model
        self.vectors = vectors  # the stored questions' unit vectors (a matrix) and each probe's, as the tier has
        self.exact = {normalize_question(q): i for i, q in reversed(list(enumerate(self.stored)))}
        # texts longer than the model reads: as in the tier, never looked up semantically, never a candidate
        self.unread = unread
        self.answers = answers  # per stored question: its answer's unit vector, or None

    @classmethod
    def build(cls, evalset: EvalSet, settings: Settings) -> InMemoryCache:
        """Embed the stored questions and the probes with the configured model, in one batch."""
        import numpy as np

        from aicache.semantic import embeddings

        embedder = embeddings.get_embedder(settings)
        probes = sorted({p.text for p in evalset.probes})
        vectors = embedder.encode([*evalset.stored, *probes])
        stored, asked = vectors[: len(evalset.stored)], vectors[len(evalset.stored) :]
        similarities = asked @ stored.T
        best = np.argsort(-similarities, axis=1)[:, : _candidates(settings)]
        ranked = {text: [(int(j), float(similarities[i, j])) for j in best[i]] for i, text in enumerate(probes)}
        row = {text: i for i, text in enumerate(probes)}
        own = [
            float(similarities[row[p.text], j]) if j >= 0 else 0.0
            for p, j in zip(evalset.probes, evalset.pairs or [-1] * len(evalset.probes), strict=True)
        ]
        texts = [*evalset.stored, *probes]
        whole = embeddings.read_whole(embedder, texts)
        unread = frozenset(t for t, read in zip(texts, whole, strict=True) if not read)
        asked_by_text = dict(zip(probes, asked, strict=True))
        answers = _answer_vectors(embedder, evalset)
        return cls(evalset, ranked, own, embedder.model_id, (stored, asked_by_text), unread, answers)

    def lookup(self, decision: Decision, *, pairwise: bool = False, judge: JudgePlan = NO_JUDGE) -> Lookup:
        """A lookup function for one decision at its operating point, with the LLM judge as ``judge`` says."""
        from aicache.normalize import normalize_question

        def find(question: str, i: int) -> Served:
            if pairwise:
                against = self.evalset.pairs[i]
                if against < 0:
                    return Served(None, 0.0)
                if normalize_question(question) == normalize_question(self.stored[against]):
                    return Served(against, 1.0)
                ranked = [(against, self.own[i])]
            else:
                exact = self.exact.get(normalize_question(question))
                if exact is not None:
                    return Served(exact, 1.0)
                ranked = self.ranked[question]
            if question in self.unread:
                return Served(None, 0.0)
            best = ranked[0][1] if ranked else 0.0
            candidates = [
                (entry, similarity)
                for entry, similarity in ranked
                if similarity >= decision.floor and self.stored[entry] not in self.unread
            ]
            judged = decision.judge(
                question,
                [(self.stored[e], s) for e, s in candidates],
                self._vectors(question, candidates),
                [self.answers[e] for e, _ in candidates] if self.answers else None,
            )
            accepted = [(j.score, e, s) for (e, s), j in zip(candidates, judged, strict=True) if j.accepted]
            if accepted:
                _, entry, similarity = max(accepted, key=lambda a: a[0])
                return Served(entry, similarity)
            gray = [(e, s) for (e, s), j in zip(candidates, judged, strict=True) if j.gray_zone]
            answers = self.evalset.answers or (None,) * len(self.stored)
            asked: tuple[int, ...] = ()
            for entry, similarity in gray[: judge.max_candidates]:  # as ``judge.candidates`` picks them
                asked = (*asked, entry)
                if judge.accepts(question, self.stored[entry], answers[entry]):
                    return Served(entry, similarity, asked)
            return Served(None, best, asked)

        return find

    def _vectors(self, question: str, candidates: Sequence[tuple[int, float]]) -> Any:
        """The question's vector, then each candidate's: what ``Decision.judge`` takes."""
        import numpy as np

        if self.vectors is None:
            return None
        stored, asked = self.vectors
        return np.vstack([asked[question], *(stored[e] for e, _ in candidates)])


def _answer_vectors(embedder: Any, evalset: EvalSet) -> list[Any]:
    """Per stored question, its answer's unit vector (None without one); empty when the file gives no answers."""
    given = [(i, a) for i, a in enumerate(evalset.answers) if a is not None]
    if not given:
        return []
    out: list[Any] = [None] * len(evalset.stored)
    for (i, _), vector in zip(given, embedder.encode([a for _, a in given]), strict=True):
        out[i] = vector
    return out


def _candidates(settings: Settings) -> int:
    """How many candidates the semantic tier shows the hit decision (``cache.candidates``)."""
    from aicache.semantic import tier

    return int(settings.get("cache.candidates", tier.CANDIDATES))


class StoreCache:
    """The eval set stored in a fresh aicache store and looked up through the exact and semantic tiers.

    ``open`` points ``AICACHE_HOME`` at a temporary directory while the store exists, so the SQLite file and the
    index file are new and the user's are untouched; the embedder is loaded before that, so a model exported
    to ONNX under the user's home is reused rather than exported again.
    """

    method = "full path: temporary store and index, exact tier, tier.lookup"

    def __init__(self, conn: sqlite3.Connection, settings: Settings, entries: Mapping[int, int], model: str) -> None:
        self.conn = conn
        self.settings = settings
        self.entries = entries  # entry id -> index into EvalSet.stored
        self.model = model

    @classmethod
    @contextlib.contextmanager
    def open(cls, evalset: EvalSet, settings: Settings) -> Iterator[StoreCache]:
        from aicache import db
        from aicache.semantic import embeddings, tier

        embedder = embeddings.get_embedder(settings)
        vectors = embedder.encode(list(evalset.stored))
        whole = embeddings.read_whole(embedder, list(evalset.stored))
        answers = _answer_vectors(embedder, evalset) or [None] * len(evalset.stored)
        texts = evalset.answers or (None,) * len(evalset.stored)
        with tempfile.TemporaryDirectory(prefix="aicache-eval-") as home, _home(Path(home)):
            conn = db.connect()
            try:
                if not _has_index_log(conn):
                    raise StoreUnavailable("this store's schema has no index change log (index_log) yet")
                with db.write_transaction(conn):
                    ids = [
                        # as the ask flow stores them: a question too long for the model gets no vector
                        _store(conn, settings, question, i, text)
                        if not read
                        else _store(conn, settings, question, i, text, (vector, answer, embedder.model_id))
                        for i, (question, vector, read, text, answer) in enumerate(
                            zip(evalset.stored, vectors, whole, texts, answers, strict=True)
                        )
                    ]
                tier.index_new_entries(conn, settings)
                yield cls(conn, settings, {entry: i for i, entry in enumerate(ids)}, embedder.model_id)
            finally:
                conn.close()

    def lookup(self, judge: JudgePlan = NO_JUDGE) -> Lookup:
        from aicache import cache
        from aicache.semantic import tier

        partition = _request(self.settings, "").partition_key

        def find(question: str, _i: int) -> Served:
            exact = cache.lookup_exact(self.conn, _request(self.settings, question).exact_key)
            if exact is not None:
                return Served(self.entries[exact.id], 1.0)
            found = tier.lookup(self.conn, self.settings, partition, question)
            entry = self.entries[found.entry_id] if found.entry_id is not None else None
            put = _put_to_judge(found.verdicts or [], self.settings)
            for ruled in (v["judge"] for v in put if "judge" in v):
                judge.heard(str(ruled["reply"]))
            asked = tuple(self.entries[v["entry_id"]] for v in put)
            return Served(entry, found.similarity or 0.0, asked)

        return find


def _put_to_judge(verdicts: list[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """The candidates the LLM judge was asked about (``--judge``: it stops at its first YES), or would have been."""
    from aicache.semantic import judge

    return [v for v in verdicts if "judge" in v] or judge.candidates(verdicts, settings)


class StoreUnavailable(Exception):
    """The full path cannot run on this version of the store; the reason says why."""


def _has_index_log(conn: sqlite3.Connection) -> bool:
    # The index replays this change log (see index.py); a store migrated without it cannot hold an index.
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'index_log'").fetchone() is not None
    )


def _request(settings: Settings, question: str) -> Any:
    from aicache.request import AskRequest

    return AskRequest(question=question, provider=str(settings.get("provider")), model=str(settings.get("model")))


def _store(
    conn: sqlite3.Connection,
    settings: Settings,
    question: str,
    i: int,
    text: str | None,
    embedding: tuple[Any, Any, str] | None = None,
) -> int:
    """Store one question with its answer (``answer N`` when the file gives none) and, with ``embedding``
    (the question's vector, the answer's or None, their model), its vectors."""
    from aicache import cache
    from aicache.providers.base import Completion

    answer = Completion(text=text or f"answer {i}", finish_reason="stop", model=str(settings.get("model")))
    vector, answer_vector, model = embedding or (None, None, None)
    return cache.store(
        conn,
        _request(settings, question),
        answer,
        cost=None,
        vector=None if vector is None else bytes(vector.tobytes()),
        embed_model=model,
        answer_vector=None if answer_vector is None else bytes(answer_vector.tobytes()),
    )


@contextlib.contextmanager
def _home(home: Path) -> Iterator[None]:
    previous = os.environ.get("AICACHE_HOME")
    os.environ["AICACHE_HOME"] = str(home)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["AICACHE_HOME"]
        else:
            os.environ["AICACHE_HOME"] = previous


def _with_decision(settings: Settings, kind: str, threshold: float | None) -> Settings:
    """``settings`` with ``decision.kind`` and, if given, the operating point (the cosine floor for rules)."""
    from aicache.config import Settings

    decision = dict(settings.data.get("decision") or {})
    cache_settings = dict(settings.data.get("cache") or {})
    decision["kind"] = kind
    if threshold is not None and kind == "rules":
        cache_settings["threshold"] = threshold
    elif threshold is not None:
        decision["threshold"] = threshold
        decision.pop("model", None)  # the given threshold applies to whatever model is installed
    return Settings({**settings.data, "decision": decision, "cache": cache_settings})


def memoised(decision: Decision) -> Decision:
    """The decision with its models' scores remembered per pair: a sweep scores each pair once, not per point."""
    from dataclasses import replace

    from aicache.semantic.decide import AnswerAwareDecision, ModelDecision

    if isinstance(decision, AnswerAwareDecision):
        return replace(decision, questions=_memoised(decision.questions), answers=_memoised(decision.answers))
    return _memoised(decision) if isinstance(decision, ModelDecision) else decision


def _memoised(decision: ModelDecision) -> ModelDecision:
    from dataclasses import replace

    scorer, seen = decision.scorer, dict[tuple[str, str], float]()

    def scores(
        question: str,
        candidates: Sequence[str],
        similarities: Sequence[float],
        vectors: Any = None,
        answers: Sequence[Any] | None = None,
    ) -> list[float]:
        # a cached question's answer is the same at every point of a sweep: the pair names the score
        cosine = dict(zip(candidates, similarities, strict=True))
        row = {c: i for i, c in enumerate(candidates)}  # its vector's row in ``vectors`` is one more
        missing = [c for c in dict.fromkeys(candidates) if (question, c) not in seen]
        if missing:
            rows = None if vectors is None else vectors[[0, *(row[c] + 1 for c in missing)]]
            given = None if answers is None else [answers[row[c]] for c in missing]
            found = scorer(question, missing, [cosine[c] for c in missing], rows, given)
            seen.update({(question, c): s for c, s in zip(missing, found, strict=True)})
        return [seen[(question, c)] for c in candidates]

    return replace(decision, scorer=scores)


def run_eval(
    evalset: EvalSet,
    *,
    settings: Settings | None = None,
    decision: str | None = None,
    threshold: float | None = None,
    sweep: bool = False,
    pairwise: bool = False,
    judge: bool = False,
    progress: Progress | None = None,
) -> EvalReport:
    """Run the protocol on ``evalset`` with the current settings (or ``settings``).

    ``decision`` is ``model``, ``rules`` or ``cosine`` (default: the setting ``decision.kind``); ``threshold``
    its operating point (default: the configured or calibrated one). The main figures come from ``StoreCache``,
    or from ``InMemoryCache`` when the store cannot hold an index, for the cosine baseline and for ``pairwise``
    runs (the report's ``method`` says which and why); ``sweep`` adds a point per ``sweep_points`` in memory.
    ``judge``: the configured LLM judge rules on the gray zone at the operating point (one call per question put
    to it; never in the sweep); otherwise nobody is called and the report counts what it would have been asked.
    """
    from aicache import config
    from aicache.semantic import decide

    started = time.perf_counter()
    settings = _with_judge(settings or config.load(), judge)
    if judge and (not evalset.answers or None in evalset.answers):
        raise UsageError('--judge needs every stored question\'s answer in the file ("answer"): the judge reads it')
    plan = JudgePlan(int(settings.get("judge.max_candidates", 1)), settings if judge else None)
    kind = decision or str(settings.get("decision.kind", decide.DEFAULT_KIND))
    if judge and kind == "cosine":
        raise UsageError("--judge rules on a decision's gray zone, and similarity alone has none")
    if kind == "cosine":
        floor = settings.get("cache.threshold")
        judging: Decision = decide.CosineDecision(float(threshold if threshold is not None else floor or 0.5))
    else:
        settings = _with_decision(settings, kind, threshold)
        judging = memoised(decide.load(settings))
    if not pairwise:
        evalset = _owed_repeats(evalset)
    points = sweep_points(judging) if sweep else ()
    tick = _ticker(progress, len(evalset.probes) * (1 + len(points)))
    memory = InMemoryCache.build(evalset, settings) if points or pairwise or kind == "cosine" else None
    try:
        if pairwise:
            raise StoreUnavailable("pairwise: each probe against its own stored question")
        if kind == "cosine":
            raise StoreUnavailable("the semantic tier never serves on similarity alone")
        with StoreCache.open(evalset, settings) as store:
            overall, categories = score(evalset, store.lookup(plan), tick)
            method, model = store.method, store.model
    except StoreUnavailable as why:
        memory = memory or InMemoryCache.build(evalset, settings)
        overall, categories = score(evalset, memory.lookup(judging, pairwise=pairwise, judge=plan), tick)
        method, model = f"in-memory ({why})", memory.model
    swept = tuple(
        SweepPoint(t, score(evalset, memory.lookup(judging.at(t), pairwise=pairwise), tick)[0])
        for t in points
        if memory is not None
    )
    return EvalReport(
        source=evalset.source,
        method=method,
        model=model,
        decision=judging.name,
        threshold=judging.threshold,
        floor=judging.floor,
        pairwise=pairwise,
        stored=len(evalset.stored),
        probes=len(evalset.probes),
        overall=overall,
        categories=categories,
        sweep=swept,
        seconds=time.perf_counter() - started,
        answer_threshold=_answer_threshold(judging) if evalset.answers else None,
        judge=None
        if kind == "cosine"
        else JudgeReport(_judge_model(settings, judge), _gray_zone(judging), plan.max_candidates, len(plan.unanswered)),
    )


def _with_judge(settings: Settings, live: bool) -> Settings:
    """``settings`` with the LLM judge on only for ``--judge``: an eval never calls a model it was not asked to."""
    from aicache.config import Settings

    return Settings({**settings.data, "judge": {**(settings.data.get("judge") or {}), "enabled": live}})


def _judge_model(settings: Settings, live: bool) -> str | None:
    return str(settings.get("judge.model")) if live else None


def _gray_zone(judging: Decision) -> float | None:
    from aicache.semantic.decide import AnswerAwareDecision, ModelDecision

    questions = judging.questions if isinstance(judging, AnswerAwareDecision) else judging
    return questions.gray_zone if isinstance(questions, ModelDecision) else None


def _answer_threshold(judging: Decision) -> float | None:
    from aicache.semantic.decide import answer_reader

    reader = answer_reader(judging)
    return None if reader is None else reader.threshold


def _ticker(progress: Progress | None, total: int) -> Callable[[], None] | None:
    if progress is None:
        return None
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        progress(done, total)

    return tick
