"""Choosing the operating point, and counting what a threshold serves.

A pair is *served* when the candidate reaches the cosine floor (the HNSW search returns nothing below it), no
exact veto fired, and the model's score reaches the threshold. On near-miss pairs a serve is a wrong answer.

``choose_threshold`` returns the most permissive threshold whose Clopper–Pearson upper bound on the wrong-answer
rate (near-miss pairs served / near-miss pairs) is at most the budget: the upper end of the two-sided 95%
interval, i.e. the 97.5% quantile of Beta(k + 1, n - k). Wrong answers cost far more than misses, so the
threshold is set by a bound on them, not by F1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
BUDGET = 0.01


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (n up to a few hundred thousand)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k + 1):
        total += math.exp(
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        )
    return min(1.0, total)


def cp_upper(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """Clopper–Pearson upper bound of a binomial rate with ``k`` events in ``n`` trials (two-sided interval)."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    tail = (1.0 - confidence) / 2.0
    lo, hi = k / n, 1.0
    for _ in range(100):  # bisection: P(X <= k | p) falls as p grows
        mid = (lo + hi) / 2.0
        if _binom_cdf(k, n, mid) > tail:
            lo = mid
        else:
            hi = mid
    return hi


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


def choose_threshold(
    scores: Sequence[float],
    labels: Sequence[int],
    eligible: Sequence[bool] | None = None,
    budget: float = BUDGET,
) -> tuple[float, Counts]:
    """The lowest threshold (most served) whose CP upper bound on wrong answers is at most ``budget``.

    Candidates are the scores of eligible negative pairs (just above each one) and 0: lowering the threshold
    only adds wrong answers when it passes a negative's score. The bound is not monotone in the count of
    positives, but it is in the count of negatives served, so the scan stops at the first threshold over budget.
    """
    negatives = sorted(
        (s for i, (s, y) in enumerate(zip(scores, labels, strict=True)) if not y and (eligible is None or eligible[i])),
        reverse=True,
    )
    n = sum(1 for y in labels if not y)
    best = math.nextafter(max(negatives), math.inf) if negatives else 0.0
    if negatives and cp_upper(0, n) > budget:
        best = math.inf  # not even zero wrong answers meets the budget with this few near-misses
    for k in range(len(negatives) + 1):
        if cp_upper(k, n) > budget:
            break
        # k wrong answers allowed: the threshold sits just above the (k+1)-th highest negative score
        best = math.nextafter(negatives[k], math.inf) if k < len(negatives) else 0.0
    if best == math.inf:
        return best, count(scores, labels, best, eligible)
    return best, count(scores, labels, best, eligible)
