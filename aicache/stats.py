"""Binomial confidence bounds for "how often does the cache serve a wrong answer?".

A wrong answer costs far more than a miss, so operating points are chosen on an *upper bound* of the wrong-answer
rate, not on the rate seen: 0 wrong out of 50 near-misses is not "0%", it is "at most 5.8%". The bound is the
exact (Clopper–Pearson) one-sided bound, computed from the binomial distribution itself by bisection, so it needs
no scipy and holds for small counts, where normal approximations are most wrong.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

CONFIDENCE = 0.95


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space so large n does not underflow."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    log_n = math.lgamma(n + 1)
    terms = [log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def upper_bound(count: int, total: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper–Pearson upper bound on a rate seen as ``count`` out of ``total``.

    The largest p for which seeing ``count`` or fewer is still plausible: P(X <= count | total, p) = 1 - confidence.
    With no trials nothing is known, so the bound is 1.
    """
    if total <= 0:
        return 1.0
    if count >= total:
        return 1.0
    alpha = 1.0 - confidence
    low, high = count / total, 1.0
    for _ in range(60):  # bisection to well below any figure that is printed
        mid = (low + high) / 2
        if _binomial_cdf(count, total, mid) > alpha:
            low = mid
        else:
            high = mid
    return high


def most_permissive(
    servable: list[float],
    total: int,
    max_wrong: float,
    confidence: float = CONFIDENCE,
    check_size: int = 0,
) -> float | None:
    """The lowest score threshold whose upper bound on wrong answers stays within ``max_wrong``.

    ``servable`` are the scores of the wrong-prone cases (near-misses) a threshold could let through; ``total``
    counts every wrong-prone case, including those never servable (under the cosine floor, or vetoed), which
    count in the rate all the same. A threshold t serves the scores >= t. Returns the threshold (``-inf``: every
    servable case may be served), or None when even serving none of them cannot be shown within the budget.

    ``check_size``: how many wrong-prone cases a later, smaller check of this threshold holds. The same share of
    wrong answers bounds higher on fewer cases, so the threshold is also kept to what would pass there.
    """
    if total == 0 or upper_bound(0, total, confidence) > max_wrong:
        return None
    ranked = sorted(servable, reverse=True)
    best = math.nextafter(ranked[0], math.inf) if ranked else -math.inf
    for k in range(1, len(ranked) + 1):
        if upper_bound(k, total, confidence) > max_wrong:
            break
        if check_size and upper_bound(math.ceil(k * check_size / total), check_size, confidence) > max_wrong:
            break
        # k served: just above the (k+1)-th highest score (a tie with the k-th serves fewer, never more)
        best = math.nextafter(ranked[k], math.inf) if k < len(ranked) else -math.inf
    return best


def most_permissive_for_each(
    groups: Iterable[tuple[Sequence[float], int]], max_wrong: float, confidence: float = CONFIDENCE
) -> float | None:
    """The lowest threshold that keeps every group within ``max_wrong``: ``most_permissive`` of each group (its
    servable scores and its total of wrong-prone cases), the strictest of them; None when one group cannot be.

    A pool of easy and hard cases bounds the pool, not the hard ones: a threshold is kept to each kind."""
    best = -math.inf
    for servable, total in groups:
        found = most_permissive(list(servable), total, max_wrong, confidence)
        if found is None:
            return None
        best = max(best, found)
    return best
