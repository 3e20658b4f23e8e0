"""How safe and how useful each hit decision is on the labelled sets, in one table.

Usage: python benchmarks/bench_eval.py [--json] [--judge-rulings [FILE ...]] [FILE ...]
(default: every labelled set in tests/data, plus the held-out test topics of training/data when present)

For each set and each decision (cosine similarity alone at its best threshold that keeps the bound on wrong
answers within 1%; the hand-written rules; the trained pair model at its calibrated operating point), with the real
embedding model: paraphrases served the right answer, near-misses and unrelated questions given a wrong answer,
each as count/total with the one-sided 95% Clopper–Pearson upper bound beside the wrong-answer rates. Files of
topic rows use the store-all protocol (every question stored, every probe asked); files of a/b pairs are
pairwise (store a, ask b), the protocol of public pair suites. A file that gives the stored questions' answers
(round 11) is judged by the model that reads them, and also by the model that reads the questions alone
(``decision.answers = false``). Below the model's row, what an LLM judge that is always right would add on the
gray zone (``judge.gray_zone``; a ceiling: no judge is called), and, for the files with recorded rulings
(``benchmarks/data/judge-rulings/``: an LLM's replies to the judge's requests, ``judge_by_hand.py``), the model with
that judge ruling, its replies served by a local server on 127.0.0.1. The README quotes this table.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from judge_by_hand import load_rulings, replaying

from _harness import ROOT
from tests.fakellm import FakeLLM
from training.pairs import HELD_OUT_FILES

SETS = ("dev-pairs.jsonl", "trap-pairs.jsonl", *HELD_OUT_FILES)
if TYPE_CHECKING:
    from aicache.config import Settings
    from aicache.semantic.evaluate import EvalReport, EvalSet, Scores

RULINGS = ROOT / "benchmarks" / "data" / "judge-rulings"
DEFAULT_FILES = tuple(ROOT / "tests" / "data" / name for name in SETS)
# What each set is to the trained decision (training/pairs.py): the model learned from the train topics of
# dev-pairs, trap-pairs and training/data; the held-out files were never used in training. The ones not named
# here are the rounds written by people who never saw the repository (FRESH).
FRESH = "never trained or calibrated on; written 2026-12-04 or -05 by people who never saw the repository"
ROLE = {
    "dev-pairs.jsonl": "trained on (train topics) and calibrated on some of its topics",
    "trap-pairs.jsonl": "trained on (train topics); written while fixing the rules",
    "heldout-pairs.jsonl": "never trained on; looked at while fixing the rules in earlier sessions",
    "general-trap-pairs.jsonl": "never trained on; written while fixing the rules",
    "test-split-dev.jsonl": "held-out test topics of training/data (developer), never trained or calibrated on",
    "test-split-everyday.jsonl": "held-out test topics of training/data (everyday), never trained or calibrated on",
    "test-split-light-edits.jsonl": "generated light edits (positives) of the test topics; seen in earlier sessions",
    **{
        f"heldout11-{kind}.jsonl": "never trained or calibrated on; written 2026-12-05, with each stored question's"
        " answer, by people who never saw the repository; read once, pairwise (training/RESULTS.md section 15)"
        for kind in ("dev-families", "everyday-pairs", "quora-style-pairs")
    },
}


def test_split_files(out: Path) -> list[Path]:
    from training.pairs import write_light_edits, write_test_split

    return [*write_test_split(out), write_light_edits(out)]


def fmt(rate: object, bound: bool = False) -> str:
    from aicache.semantic.evaluate import Rate

    assert isinstance(rate, Rate)
    if not rate.total:
        return "-"
    text = f"{rate.count}/{rate.total} = {100 * rate.rate:.1f}%"
    return f"{text} (<= {100 * rate.upper:.1f}%)" if bound else text


def judge_ceiling(report: object) -> str:
    """The model's row if the LLM judge said YES to every paraphrase it is shown about its own question's answer
    and NO to every near-miss: what the gray zone could win, and what the judge would be trusted with."""
    from aicache.semantic.evaluate import EvalReport, Rate

    assert isinstance(report, EvalReport)
    served, judged = report.overall.paraphrases_served, report.overall.paraphrases_judged
    shown = report.overall.negatives_judged
    ceiling = fmt(Rate(served.count + judged.count, served.total))
    return f"{ceiling:<22} shown {shown.count}/{shown.total} near-misses (each YES a wrong answer)"


def with_recorded_judge(settings: Settings, url: str) -> Settings:
    """``settings`` with the judge pointed at the server that replays the recorded rulings."""
    from judge_by_hand import judge_settings

    from aicache.config import Settings

    tables = judge_settings(url, float(settings.get("judge.gray_zone")))
    providers = settings.data.get("providers", {})
    openai = providers.get("openai", {}) | tables["providers"]["openai"]
    return Settings(settings.data | {"judge": tables["judge"], "providers": providers | {"openai": openai}})


def recorded_judge_row(
    evalset: EvalSet, settings: Settings, pairwise: bool, judge_url: str | None
) -> tuple[tuple[str, str, Scores], EvalReport] | None:
    """The model with the recorded judge ruling; None when no request of this file has a recorded ruling."""
    from aicache.semantic import evaluate

    if judge_url is None or not evalset.answers:
        return None
    chosen = with_recorded_judge(settings, judge_url)
    report = evaluate.run_eval(evalset, settings=chosen, decision="model", pairwise=pairwise, judge=True)
    asked = report.overall.paraphrases_judged.count + report.overall.negatives_judged.count
    if report.judge is None or report.judge.unanswered >= asked:
        return None
    missing = f", {report.judge.unanswered} without a ruling (NO)" if report.judge.unanswered else ""
    return (f"  + the recorded LLM judge ({report.judge.gray_zone:.2f}{missing})", "", report.overall), report


def is_pair_file(path: Path) -> bool:
    first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()), "{}")
    return "same_answer" in json.loads(first)


def describe(path: Path, judge_url: str | None = None) -> dict[str, object]:
    from aicache import config
    from aicache.semantic import evaluate

    evalset = evaluate.load_pairs(path)
    settings = config.load()
    pairwise = is_pair_file(path)
    results: dict[str, object] = {}
    cosine = evaluate.run_eval(evalset, settings=settings, decision="cosine", sweep=True, pairwise=pairwise)
    best = evaluate.best_safe_point(cosine.sweep)
    rows = []
    if best is None:
        rows.append(("cosine alone", "no threshold keeps the bound within 1%", None))
    else:
        rows.append((f"cosine alone >= {best.threshold:.2f}", "", best.scores))
    results["cosine_best"] = best and best.to_json()
    runs = [("rules", "rules", settings), ("model", "model", settings)]
    if evalset.answers:
        data = settings.data | {"decision": {**settings.data.get("decision", {}), "answers": False}}
        runs.append(("model without the answers", "model", config.Settings(data)))
    for name, kind, chosen in runs:
        try:
            report = evaluate.run_eval(evalset, settings=chosen, decision=kind, pairwise=pairwise)
        except Exception as exc:  # the model may not be installed on this checkout: say so in the table
            rows.append((kind, f"unavailable: {exc}", None))
            continue
        answers = f" / {report.answer_threshold:.2f}" if report.answer_threshold is not None else ""
        rows.append((f"{report.decision.split('+')[0]} @ {report.threshold:.2f}{answers}", "", report.overall))
        results[name] = report.to_json()
        if name == "model" and report.judge is not None and report.judge.gray_zone is not None:
            rows.append((f"  + a judge always right ({report.judge.gray_zone:.2f})", judge_ceiling(report), None))
            recorded = recorded_judge_row(evalset, chosen, pairwise, judge_url)
            if recorded is not None:
                rows.append(recorded[0])
                results["model with the recorded judge"] = recorded[1].to_json()
    protocol = "pairwise" if pairwise else "store all"
    print(f"\n{path.name}: {len(evalset.stored)} stored, {len(evalset.probes)} probes, {protocol}")
    role = ROLE.get(path.name) or (FRESH if path.name in HELD_OUT_FILES else None)
    if role:
        print(f"  ({role})")
    print(f"  {'decision':<40} {'paraphrases served':<22} {'near-misses wrong (bound)':<30} unrelated wrong (bound)")
    for label, note, scores in rows:
        if scores is None:
            print(f"  {label:<40} {note}")
            continue
        print(
            f"  {label:<40} {fmt(scores.paraphrases_served):<22} {fmt(scores.negatives_wrong, True):<30} "
            f"{fmt(scores.unrelated_wrong, True)}"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="*", type=Path, default=[])
    parser.add_argument("--json", action="store_true", help="also write benchmarks/out/eval.json")
    parser.add_argument(
        "--judge-rulings",
        type=Path,
        nargs="*",
        help="recorded replies of an LLM judge (default: benchmarks/data/judge-rulings/*.jsonl; none: no judge row)",
    )
    args = parser.parse_args()
    # A home of its own: the run must not read the user's settings or write into their cache.
    if "AICACHE_HOME" not in os.environ:
        os.environ["AICACHE_HOME"] = tempfile.mkdtemp(prefix="aicache-bench-eval-")
        atexit.register(shutil.rmtree, os.environ["AICACHE_HOME"], ignore_errors=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    files = args.files or [*DEFAULT_FILES, *test_split_files(Path(os.environ["AICACHE_HOME"]))]
    rulings = sorted(RULINGS.glob("*.jsonl")) if args.judge_rulings is None else args.judge_rulings
    server = FakeLLM(respond=replaying(load_rulings(rulings))).start() if rulings else None
    try:
        results = {path.name: describe(path, server.openai_url if server else None) for path in files}
    finally:
        if server is not None:
            server.stop()
    if args.json:
        out = ROOT / "benchmarks" / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(f"\nwrote {out / 'eval.json'}")


if __name__ == "__main__":
    main()
