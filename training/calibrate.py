"""Choosing the operating point, and counting what a threshold serves.

A pair is *served* when the candidate reaches the cosine floor (the HNSW search returns nothing below it), no
exact veto fired, and the model's score reaches the threshold. On near-miss pairs a serve is a wrong answer.

``choose_threshold`` returns the most permissive threshold whose Clopper–Pearson upper bound on the wrong-answer
rate (near-miss pairs served / near-miss pairs) is at most the budget: the upper end of the two-sided 95%
interval, i.e. the 97.5% quantile of Beta(k + 1, n - k). Wrong answers cost far more than misses, so the
threshold is set by a bound on them, not by F1.

With ``kinds``, the bound must hold for each kind of near-miss separately (``near_miss_kind``), and the threshold
is the strictest of theirs: pooled, the easy kinds (a paraphrase against a near-miss, a generated one-word edit)
outnumber the hard one (a question against its own near-miss) and hide how often it is served
(training/RESULTS.md section 7); pooled with the family near-misses, the a/b pair traps of other domains hid
theirs (section 10).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from aicache import stats

CONFIDENCE = 0.95
BUDGET = 0.01


def cp_upper(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """Clopper–Pearson upper bound of a binomial rate with ``k`` events in ``n`` trials: the upper end of the
    two-sided interval, i.e. ``stats.upper_bound`` (one-sided) at half the miss probability."""
    return stats.upper_bound(k, n, 1.0 - (1.0 - confidence) / 2.0)


@dataclass(frozen=True)
class Counts:
    served: int  # positive pairs served (the right answer)
    positives: int
    wrong: int  # negative pairs served (a wrong answer)
    negatives: int

    @property
    def served_rate(self) -> float:
        return self.served / self.positives if self.positives else 0.0

    @property
    def wrong_rate(self) -> float:
        return self.wrong / self.negatives if self.negatives else 0.0

    @property
    def wrong_upper(self) -> float:
        return cp_upper(self.wrong, self.negatives)

    def row(self) -> str:
        return (
            f"{self.served}/{self.positives} = {100 * self.served_rate:.1f}% | "
            f"{self.wrong}/{self.negatives} = {100 * self.wrong_rate:.1f}% | {100 * self.wrong_upper:.1f}%"
        )


def count(
    scores: Sequence[float],
    labels: Sequence[int],
    threshold: float,
    eligible: Sequence[bool] | None = None,
) -> Counts:
    """Served and wrong at ``threshold``; ``eligible`` is False where the floor or a veto already refused."""
    served = wrong = positives = negatives = 0
    for i, (score, label) in enumerate(zip(scores, labels, strict=True)):
        hit = score >= threshold and (eligible is None or eligible[i])
        if label:
            positives += 1
            served += hit
        else:
            negatives += 1
            wrong += hit
    return Counts(served, positives, wrong, negatives)


def near_miss_kind(role: str) -> str:
    """The kind a near-miss pair's role (``pairs.Pair.role``) is bounded with: ``question`` (a question against
    its own near-miss), ``pair`` (a hand-written a/b trap pair), ``paraphrase`` (a paraphrase against a
    near-miss), ``generated`` (one-edit near-misses of ``generate.py``) or ``cross`` (another topic's nearest
    text)."""
    if role in ("q-n", "n-q"):
        return "question"
    if role.startswith("trap"):
        return "pair"
    if role in ("p-n", "n-p"):
        return "paraphrase"
    if role.startswith("gen"):
        return "generated"
    return role


def choose_threshold(
    scores: Sequence[float],
    labels: Sequence[int],
    eligible: Sequence[bool] | None = None,
    budget: float = BUDGET,
    kinds: Sequence[str] | None = None,
) -> tuple[float, Counts]:
    """The lowest threshold (most served) whose CP upper bound on wrong answers is at most ``budget``
    (``stats.most_permissive`` with the two-sided interval's upper end); ``inf`` when no threshold meets it.
    With ``kinds`` (each pair's ``near_miss_kind``), the bound must hold for every kind of near-miss.

    Candidates are the scores of eligible negative pairs (just above each one) and 0: lowering the threshold
    only adds wrong answers when it passes a negative's score.
    """
    kind_of = list(kinds) if kinds is not None else ["all"] * len(labels)
    groups = []
    for group in sorted({k for k, y in zip(kind_of, labels, strict=True) if not y}) or ["all"]:
        negatives = [i for i, y in enumerate(labels) if not y and kind_of[i] == group]
        groups.append(([scores[i] for i in negatives if eligible is None or eligible[i]], len(negatives)))
    found = stats.most_permissive_for_each(groups, budget, 1.0 - (1.0 - CONFIDENCE) / 2.0)
    best = math.inf if found is None else max(found, 0.0)
    return best, count(scores, labels, best, eligible)


def count_by_kind(
    scores: Sequence[float],
    labels: Sequence[int],
    threshold: float,
    kinds: Sequence[str],
    eligible: Sequence[bool] | None = None,
) -> dict[str, Counts]:
    """Near-misses served at ``threshold``, for each kind (every positive is counted with each kind)."""
    out = {}
    for group in sorted({k for k, y in zip(kinds, labels, strict=True) if not y}):
        keep = [i for i, y in enumerate(labels) if y or kinds[i] == group]
        out[group] = count(
            [scores[i] for i in keep],
            [labels[i] for i in keep],
            threshold,
            None if eligible is None else [eligible[i] for i in keep],
        )
    return out


ALWAYS = 2.0  # above any probability: the effective score of a pair the other rule already serves


@dataclass(frozen=True)
class Union:
    """Two thresholds served together: a pair is served when the first score reaches ``first`` or the second
    reaches ``second``."""

    first: float
    second: float
    counts: Counts


def choose_union(
    first: Sequence[float],
    second: Sequence[float],
    labels: Sequence[int],
    grid: Sequence[float],
    eligible: Sequence[bool] | None = None,
    budget: float = BUDGET,
    kinds: Sequence[str] | None = None,
) -> Union | None:
    """The union rule's thresholds (RESULTS.md section 17): for each first threshold of ``grid``, the second is
    ``choose_threshold``'s on the second score among the pairs the first leaves unserved, those it serves counted
    as served, so the bound holds on the union for every kind. Of these, the pair serving the most positives;
    ties go to the higher first threshold. None when no first threshold of the grid keeps the bound."""
    best: Union | None = None
    for t1 in sorted(grid, reverse=True):
        effective = [ALWAYS if s1 >= t1 else s2 for s1, s2 in zip(first, second, strict=True)]
        t2, counts = choose_threshold(effective, labels, eligible, budget, kinds)
        if t2 > 1.0:  # the first rule alone breaks a kind's bound (or nothing can be shown within it)
            continue
        if best is None or counts.served > best.counts.served:
            best = Union(t1, t2, counts)
    return best
