"""Choose the hit decision's operating point from labelled pairs, with a bound on wrong answers.

Rates are those of ``aicache eval``: *served* is the share of right pairs (the cached answer was right) that
the decision serves, *wrong* the share of wrong pairs (a near-miss) that it serves. A pair is served at threshold
t when its cosine similarity reaches the floor, no exact rule vetoes it and its score reaches t.

``fit`` picks the most permissive threshold whose one-sided 95% Clopper–Pearson upper bound on *wrong* stays
within the budget. That needs evidence: with no wrong answer at all, the bound falls to 1% only after 299 wrong
pairs were seen (``minimum_wrong_pairs``), so most users will not have enough at first, and ``learn`` says so
instead of guessing. ``check`` then compares the fitted threshold with today's on newer data than it was fitted
on (split by time: the older part fits, the newer part tests) and accepts it only if it serves more there at the
same bound, or if today's threshold breaks the budget there and the fitted one does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from aicache import stats
from aicache.learn.labelled import LabelledPair

FIT_SHARE = 0.6  # the older 60% of the labels fits, the newer 40% tests


@dataclass(frozen=True)
class Outcome:
    """What one threshold does to a set of labelled pairs."""

    threshold: float
    served: int  # right pairs served
    right: int  # right pairs
    wrong: int  # wrong pairs served
    wrong_pairs: int  # wrong pairs

    @property
    def served_rate(self) -> float:
        return self.served / self.right if self.right else 0.0

    @property
    def wrong_rate(self) -> float:
        return self.wrong / self.wrong_pairs if self.wrong_pairs else 0.0

    @property
    def wrong_bound(self) -> float:
        return stats.upper_bound(self.wrong, self.wrong_pairs)

    def to_json(self) -> dict[str, float | int]:
        return {
            "threshold": round(self.threshold, 4),
            "served": self.served,
            "right_pairs": self.right,
            "wrong": self.wrong,
            "wrong_pairs": self.wrong_pairs,
            "served_rate": round(self.served_rate, 4),
            "wrong_rate": round(self.wrong_rate, 4),
            "wrong_upper95": round(self.wrong_bound, 4),
        }


def served(pair: LabelledPair, threshold: float, floor: float) -> bool:
    return pair.similarity >= floor and not pair.vetoed and pair.score >= threshold


def outcome(pairs: Sequence[LabelledPair], threshold: float, floor: float) -> Outcome:
    right = [p for p in pairs if p.good]
    wrong = [p for p in pairs if not p.good]
    return Outcome(
        threshold,
        sum(served(p, threshold, floor) for p in right),
        len(right),
        sum(served(p, threshold, floor) for p in wrong),
        len(wrong),
    )


def minimum_wrong_pairs(max_wrong: float) -> int:
    """The fewest wrong pairs that can show a bound of ``max_wrong`` at all (with none of them served)."""
    # With none served the bound is 1 - (1 - confidence) ** (1 / n): solve for n.
    return math.ceil(math.log(1 - stats.CONFIDENCE) / math.log1p(-max_wrong))


def fit(pairs: Sequence[LabelledPair], floor: float, max_wrong: float, check_size: int = 0) -> float | None:
    """The most permissive threshold whose bound on wrong answers is within ``max_wrong``; None without enough.

    ``check_size``: how many wrong pairs the newer part that will check this threshold holds (its bound is
    computed on fewer pairs; see ``stats.most_permissive``).
    """
    wrong = [p for p in pairs if not p.good]
    servable = [p.score for p in wrong if served(p, -math.inf, floor)]
    found = stats.most_permissive(servable, len(wrong), max_wrong, check_size=check_size)
    return None if found is None else max(found, 0.0)


def split_by_time(pairs: Sequence[LabelledPair]) -> tuple[list[LabelledPair], list[LabelledPair]]:
    """Older part and newer part. Pair-file pairs (no time) go by topic, so one topic never lands in both."""
    from aicache.learn.labelled import topic_of

    timed = sorted((p for p in pairs if p.ts > 0), key=lambda p: p.ts)
    cut = int(len(timed) * FIT_SHARE)
    older, newer = timed[:cut], timed[cut:]
    for pair in (p for p in pairs if p.ts <= 0):
        (older if int(topic_of(pair)[:8], 16) % 100 < FIT_SHARE * 100 else newer).append(pair)
    return older, newer


@dataclass(frozen=True)
class Calibration:
    """The finding for one group of pairs (all of them, or one partition kind)."""

    group: str
    current: float
    fitted: float | None
    fit_pairs: int
    test_before: Outcome
    test_after: Outcome | None
    accepted: bool
    why: str

    def to_json(self) -> dict[str, object]:
        return {
            "group": self.group,
            "current_threshold": round(self.current, 4),
            "fitted_threshold": None if self.fitted is None else round(self.fitted, 4),
            "fit_pairs": self.fit_pairs,
            "test_before": self.test_before.to_json(),
            "test_after": None if self.test_after is None else self.test_after.to_json(),
            "accepted": self.accepted,
            "why": self.why,
        }


def calibrate(group: str, pairs: Sequence[LabelledPair], current: float, floor: float, max_wrong: float) -> Calibration:
    """Fit on the older part, test against today's threshold on the newer part, and decide."""
    older, newer = split_by_time(pairs)
    before = outcome(newer, current, floor)
    need = minimum_wrong_pairs(max_wrong)
    have = sum(not p.good for p in older)
    fitted = fit(older, floor, max_wrong, check_size=sum(not p.good for p in newer))
    if fitted is None:
        why = (
            f"not enough data: fitting needs at least {need} wrong-answer labels to bound wrong answers at "
            f"{max_wrong:.1%}, and the older part has {have}"
        )
        return Calibration(group, current, None, len(older), before, None, False, why)
    after = outcome(newer, fitted, floor)
    accepted, why = verdict(before, after, max_wrong)
    return Calibration(group, current, fitted, len(older), before, after, accepted, why)


def verdict(before: Outcome, after: Outcome, max_wrong: float) -> tuple[bool, str]:
    """Whether ``after`` should replace ``before`` (both measured on the newer part), and why."""
    budget = max(max_wrong, before.wrong_bound)
    if after.wrong_bound > budget:
        return False, f"it breaks the bound on newer data ({after.wrong_bound:.1%} > {budget:.1%})"
    if before.wrong_bound > max_wrong and after.wrong_bound < before.wrong_bound:
        return True, f"today's setting breaks the bound on newer data ({before.wrong_bound:.1%}); this is safer"
    if after.served > before.served:
        counts = f"{after.served}/{after.right} vs {before.served}/{before.right}"
        return True, f"serves more on newer data ({counts}) at the bound"
    return False, "today's setting already serves as much on newer data"
