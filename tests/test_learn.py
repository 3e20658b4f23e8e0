"""``learn``'s calibration: a bound on wrong answers, fitted on older labels and checked on newer ones."""

from __future__ import annotations

import random

from aicache.learn import calibrate
from aicache.learn.labelled import LabelledPair


def pairs(
    count: int, *, good: bool, scores: tuple[float, float], start: float, rng: random.Random
) -> list[LabelledPair]:
    low, high = scores
    return [
        LabelledPair(
            f"q{start}-{i}", f"c{i}", good, "feedback", start + i, "plain", similarity=0.8, score=rng.uniform(low, high)
        )
        for i in range(count)
    ]


def test_the_fitted_threshold_is_the_most_permissive_within_the_bound() -> None:
    rng = random.Random(7)
    wrong = pairs(600, good=False, scores=(0.0, 0.6), start=1, rng=rng)
    right = pairs(600, good=True, scores=(0.5, 1.0), start=1, rng=rng)
    threshold = calibrate.fit([*wrong, *right], floor=0.5, max_wrong=0.01)
    assert threshold is not None
    served_wrong = sum(p.score >= threshold for p in wrong)
    assert calibrate.outcome(wrong, threshold, 0.5).wrong_bound <= 0.01
    # one more wrong pair served would break the bound: the threshold is as low as the budget allows
    assert calibrate.stats.upper_bound(served_wrong + 1, 600) > 0.01 or threshold <= 0.0


def test_too_few_wrong_labels_fit_nothing_and_say_how_many_are_needed() -> None:
    rng = random.Random(1)
    few = pairs(100, good=False, scores=(0.0, 0.3), start=1, rng=rng) + pairs(
        100, good=True, scores=(0.7, 1), start=1, rng=rng
    )
    assert calibrate.minimum_wrong_pairs(0.01) == 299
    assert calibrate.fit(few, floor=0.5, max_wrong=0.01) is None
    finding = calibrate.calibrate("all", few, current=0.9, floor=0.5, max_wrong=0.01)
    assert not finding.accepted and "at least 299" in finding.why


def test_vetoed_or_below_floor_wrong_pairs_are_never_served() -> None:
    vetoed = LabelledPair("a", "b", False, "pairs", 0, "plain", similarity=0.9, score=0.99, vetoed=True)
    low = LabelledPair("a", "c", False, "pairs", 0, "plain", similarity=0.3, score=0.99)
    assert not calibrate.served(vetoed, 0.5, 0.5) and not calibrate.served(low, 0.5, 0.5)


def test_a_looser_threshold_is_accepted_only_when_newer_data_is_served_more_at_the_bound() -> None:
    rng = random.Random(3)
    older_wrong = pairs(780, good=False, scores=(0.0, 0.5), start=1, rng=rng)
    older_right = pairs(780, good=True, scores=(0.4, 1), start=1, rng=rng)
    # The newer wrong pairs score lower than the older ones: the fitted threshold lets none of them through.
    newer_wrong = pairs(520, good=False, scores=(0.0, 0.3), start=10_000, rng=rng)
    newer_right = pairs(520, good=True, scores=(0.4, 1), start=10_000, rng=rng)
    data = [*older_wrong, *older_right, *newer_wrong, *newer_right]
    finding = calibrate.calibrate("all", data, current=0.95, floor=0.5, max_wrong=0.01)
    assert finding.accepted and finding.fitted is not None and finding.fitted < 0.95
    assert finding.test_after is not None and finding.test_after.served > finding.test_before.served
    assert finding.test_after.wrong_bound <= 0.01
    # Newer data that contradicts the fit (its wrong pairs reach past the threshold) is not accepted.
    leaky = pairs(520, good=False, scores=(0.45, 0.6), start=10_000, rng=rng)
    refused = calibrate.calibrate(
        "all", [*older_wrong, *older_right, *leaky, *newer_right], current=0.95, floor=0.5, max_wrong=0.01
    )
    assert not refused.accepted and "breaks the bound" in refused.why
    # Already at the best point: nothing to propose.
    again = calibrate.calibrate("all", data, current=finding.fitted, floor=0.5, max_wrong=0.01)
    assert not again.accepted


def test_a_threshold_that_breaks_the_bound_on_newer_data_is_tightened() -> None:
    rng = random.Random(5)
    data = pairs(1200, good=False, scores=(0.0, 0.8), start=1, rng=rng) + pairs(
        1200, good=True, scores=(0.6, 1), start=1, rng=rng
    )
    finding = calibrate.calibrate("all", data, current=0.5, floor=0.5, max_wrong=0.01)
    assert finding.test_before.wrong_bound > 0.01
    assert finding.accepted and finding.fitted is not None and finding.fitted > 0.5


def test_the_split_is_by_time_and_pair_files_by_topic() -> None:
    timed = [LabelledPair(f"q{i}", "c", True, "feedback", float(i + 1), "plain") for i in range(10)]
    files = [LabelledPair(f"p{i}", f"topic {i % 3}", True, "pairs", 0.0, "plain") for i in range(30)]
    older, newer = calibrate.split_by_time([*timed, *files])
    assert max(p.ts for p in older if p.ts) < min(p.ts for p in newer if p.ts)
    older_topics = {p.cached for p in older if p.source == "pairs"}
    newer_topics = {p.cached for p in newer if p.source == "pairs"}
    assert not older_topics & newer_topics


def test_a_learned_threshold_names_the_model_that_reads_the_questions_not_the_answer_model() -> None:
    from aicache.learn import run as learn_run

    finding = calibrate.Calibration("all", 0.88, 0.8, 100, None, None, True, "")  # type: ignore[arg-type]
    changes = learn_run._changes([finding], {}, "model:pair-features-aaa+answer:pair-features-bbb")
    assert changes == {"decision.threshold": 0.8, "decision.model": "pair-features-aaa"}
    assert learn_run._changes([finding], {}, "model:pair-features-aaa")["decision.model"] == "pair-features-aaa"


def test_the_answer_models_learned_threshold_names_it_and_only_it() -> None:
    from aicache.learn import run as learn_run

    questions = calibrate.Calibration("all", 0.88, 0.8, 100, None, None, True, "")  # type: ignore[arg-type]
    answers = calibrate.Calibration(learn_run.ANSWER_GROUP, 0.917, 0.95, 100, None, None, True, "")  # type: ignore[arg-type]
    kept = calibrate.Calibration("all", 0.88, None, 100, None, None, False, "")  # type: ignore[arg-type]
    name = "model:pair-features-aaa+answer:pair-features-bbb"
    assert learn_run._changes([questions, answers], {}, name) == {
        "decision.threshold": 0.8,
        "decision.model": "pair-features-aaa",
        "decision.answer_threshold": 0.95,
        "decision.answer_model": "pair-features-bbb",
    }
    # only the answer model's was learned: the question model keeps its shipped threshold, named by nothing
    assert learn_run._changes([kept, answers], {}, name) == {
        "decision.answer_threshold": 0.95,
        "decision.answer_model": "pair-features-bbb",
    }
