"""The union rule's calibration gate (RESULTS.md section 17): what serving an answered candidate when the question
model reaches t1 *or* the answer model reaches t2 would serve.

Both thresholds are chosen together on the answer model's calibration data (the calibration pairs whose cached
text has an answer) by ``calibrate.choose_union``: the bound on wrong answers holds for each kind of near-miss on
the union, and of the pairs of thresholds that keep it, the one serving the most paraphrases. The rule failed its
gate (it cannot serve more near-verbatim rewordings than the answer model alone there), so nothing ships it; this
prints the measurement behind that.

    python -m training.union --questions training/work --answers training/work/answer
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from training import calibrate
from training.train import FLOOR, HAND_WRITTEN_PARAPHRASES, WORK_DIR

GRID = [round(0.880 + 0.005 * i, 3) for i in range(24)]  # 0.880 .. 0.995
LIGHT_EDITS = ("gen-light-edit",)


def calibration(work: Path) -> dict[tuple[str, str, str], tuple[dict[str, Any], float]]:
    """A training run's calibration pairs with their scores, keyed by (cached, new, role)."""
    pairs = json.loads((work / "pairs.json").read_text(encoding="utf-8"))["calibration"]
    scores = json.loads((work / "scores.json").read_text(encoding="utf-8"))["calibration"]
    return {(p["a"], p["b"], p["role"]): (p, s) for p, s in zip(pairs, scores, strict=True)}


def choose(questions_work: Path, answers_work: Path) -> tuple[calibrate.Union, dict[str, int]]:
    """The union's thresholds on the answer model's calibration pairs, and what they serve there."""
    answered = calibration(answers_work)
    by_questions = calibration(questions_work)
    missing = [k for k in answered if k not in by_questions]
    if missing:
        raise SystemExit(f"{len(missing)} of the answer model's calibration pairs lack a question-model score")
    rows = [(p, by_questions[k][1], s) for k, (p, s) in answered.items()]
    labels = [p["label"] for p, _, _ in rows]
    ok = [p["cosine"] >= FLOOR for p, _, _ in rows]
    kinds = [calibrate.near_miss_kind(p["role"]) for p, _, _ in rows]
    found = calibrate.choose_union([q for _, q, _ in rows], [a for _, _, a in rows], labels, GRID, ok, kinds=kinds)
    if found is None:
        raise SystemExit("no pair of thresholds keeps the bound on the answer model's calibration data")
    union = calibrate.Union(found.first, math.ceil(found.second * 1e6) / 1e6, found.counts)
    served = [flag and (q >= union.first or a >= union.second) for (_, q, a), flag in zip(rows, ok, strict=True)]
    hand = [p["label"] and p["role"] in HAND_WRITTEN_PARAPHRASES for p, _, _ in rows]
    light = [p["role"] in LIGHT_EDITS for p, _, _ in rows]
    table = {
        "hand_written_paraphrases": sum(hand),
        "hand_written_paraphrases_served": sum(h and s for h, s in zip(hand, served, strict=True)),
        "light_edits": sum(light),
        "light_edits_served": sum(e and s for e, s in zip(light, served, strict=True)),
        "near_misses": union.counts.negatives,
        "near_misses_served": union.counts.wrong,
    }
    return union, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The union rule's calibration gate (RESULTS.md section 17).")
    parser.add_argument("--questions", type=Path, default=WORK_DIR, help="the question model's training work dir")
    parser.add_argument("--answers", type=Path, default=WORK_DIR / "answer", help="the answer model's work dir")
    args = parser.parse_args(argv)
    union, table = choose(args.questions, args.answers)
    print(
        f"union: question model >= {union.first:.3f} or answer model >= {union.second:.6f};"
        f" hand-written paraphrases {table['hand_written_paraphrases_served']}/{table['hand_written_paraphrases']},"
        f" light edits {table['light_edits_served']}/{table['light_edits']},"
        f" near-misses {table['near_misses_served']}/{table['near_misses']}"
        f" (CP upper {union.counts.wrong_upper:.2%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
