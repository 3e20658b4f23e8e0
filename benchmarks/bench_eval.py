"""How safe and how useful the semantic tier is on labelled questions, against cosine similarity alone.

Usage: python benchmarks/bench_eval.py [--json] [FILE ...]   (default: tests/data/dev-pairs.jsonl and
tests/data/heldout-pairs.jsonl)

For each file it prints, at the default settings (threshold, verifier, real embedding model): paraphrases served
the right answer, wrong answers on paraphrases, near-miss negatives and unrelated questions, each with counts and
a Wilson 95% interval. Then the cosine-only baseline: the threshold sweep without the verifier, and its best
point that keeps every wrong-answer rate at or under 1%. The README quotes these figures.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

from _harness import ROOT

SETS = ("dev-pairs.jsonl", "heldout-pairs.jsonl", "trap-pairs.jsonl", "general-trap-pairs.jsonl")
DEFAULT_FILES = tuple(ROOT / "tests" / "data" / name for name in SETS)


def fmt(rate: object) -> str:
    from aicache.semantic.evaluate import Rate

    assert isinstance(rate, Rate)
    low, high = rate.interval
    return f"{rate.count}/{rate.total} = {100 * rate.rate:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def describe(path: Path) -> dict[str, object]:
    from aicache import config
    from aicache.semantic import evaluate

    evalset = evaluate.load_pairs(path)
    settings = config.load()
    guarded = evaluate.run_eval(evalset, settings=settings, sweep=True)
    cosine = evaluate.run_eval(evalset, settings=settings, sweep=True, verifier=False)
    best = evaluate.best_safe_point(cosine.sweep)
    o = guarded.overall
    print(f"\n{path.name}: {guarded.stored} stored questions, {guarded.probes} probes, model {guarded.model}")
    print(f"  with the verifier, threshold {guarded.threshold:.2f}:")
    print(f"    paraphrases served the right answer  {fmt(o.paraphrases_served)}")
    print(f"    paraphrases given a wrong answer     {fmt(o.paraphrases_wrong)}")
    print(f"    near-misses given a wrong answer     {fmt(o.negatives_wrong)}")
    print(f"    unrelated given a wrong answer       {fmt(o.unrelated_wrong)}")
    print("  cosine only (no verifier):  threshold  served  wrong: near-miss  unrelated  paraphrase")
    for point in cosine.sweep:
        s = point.scores
        rates = (s.paraphrases_served, s.negatives_wrong, s.unrelated_wrong, s.paraphrases_wrong)
        served, near, unrelated, para = (100 * r.rate for r in rates)
        print(f"    {point.threshold:>36.2f}  {served:5.1f}%  {near:14.1f}%  {unrelated:8.1f}%  {para:9.1f}%")
    if best is None:
        print("  cosine only, best at <= 1% wrong answers: no threshold qualifies")
    else:
        print(
            f"  cosine only, best at <= 1% wrong answers: threshold {best.threshold:.2f}, "
            f"paraphrases served {fmt(best.scores.paraphrases_served)}"
        )
    return {"verifier": guarded.to_json(), "cosine_only": cosine.to_json(), "cosine_only_best": best and best.to_json()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="*", type=Path, default=list(DEFAULT_FILES))
    parser.add_argument("--json", action="store_true", help="also write benchmarks/out/eval.json")
    args = parser.parse_args()
    # A home of its own: the run must not read the user's settings or write into their cache.
    if "AICACHE_HOME" not in os.environ:
        os.environ["AICACHE_HOME"] = tempfile.mkdtemp(prefix="aicache-bench-eval-")
        atexit.register(shutil.rmtree, os.environ["AICACHE_HOME"], ignore_errors=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = {path.name: describe(path) for path in args.files}
    if args.json:
        out = ROOT / "benchmarks" / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(f"\nwrote {out / 'eval.json'}")


if __name__ == "__main__":
    main()
