"""Compare the designs on the same splits: the table of training/RESULTS.md.

    python -m training.compare [--decision DIR] [--floor 0.5]

Reads ``training/work/pairs.json`` (written by ``training/train.py``: every pair of the train, calibration and
test splits and of the two held-out files, with its cosine similarity) and scores it with

* ``cosine``: the cosine similarity alone;
* ``verifier``: today's rules at their default operating point (0.50, reworded 0.70), not calibrated;
* ``features``: logistic regression over cosine, the verifier's rule verdicts, word overlap, length ratio;
* ``shipped model``: the shipped decision model, through the runtime (``aicache.semantic.decision``), with the
  scores ``train.py`` saved when they are of its version;
* ``shipped model + vetoes``: the same behind the exact rules (different numbers, versions, identifiers).

Each calibrated design gets its threshold from the calibration data (the calibration split and the independent
writers' pairs: 95% Clopper–Pearson upper bound on near-misses served <= 1% for each kind of near-miss, pairs
below the cosine floor never served); the table shows served, wrong and the bound on every split.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from training import calibrate, features
from training.train import ARTEFACT_DIR, FLOOR, WORK_DIR

SHIPPED = "shipped model"
VERIFIER = "verifier (today)"
VERIFIER_THRESHOLD = 0.5  # its default operating point (reworded pairs: 0.70), not calibrated
SETS = ("calibration", "test", "test q->p/n", "heldout", "general-trap")


def load(work: Path) -> dict[str, list[dict]]:
    data = json.loads((work / "pairs.json").read_text(encoding="utf-8"))
    data["test q->p/n"] = [p for p in data["test"] if p["role"] in ("q-p", "q-n")]
    return data


def runtime_scores(data: dict[str, list[dict]], directory: Path) -> tuple[dict[str, list[float]], float, str]:
    """Every pair (but the train split's) scored through the runtime, as ``ask`` would score it."""
    from aicache.config import Settings
    from aicache.semantic import decision

    model = decision.load(Settings({"decision": {"directory": str(directory)}}))
    out = {name: _score_rows(model, rows) for name, rows in data.items() if name != "train"}
    return out, model.threshold, model.version


def _score_rows(model: object, rows: list[dict]) -> list[float]:
    """Each pair as ``ask`` scores it: the new question ``b`` against cached ``a``, with their cosine."""
    return [model.score(r["b"], [r["a"]], [r["cosine"]])[0] for r in rows]  # type: ignore[attr-defined]


def model_scores(
    data: dict[str, list[dict]], directory: Path, saved: Path
) -> tuple[dict[str, list[float]], float, str]:
    """The scores ``train.py`` saved with the runtime (pairs below the floor scored 0), when they are of this
    model version; otherwise score every pair again through the runtime."""
    from aicache.semantic import decision

    config = decision.read_config(directory)
    if saved.is_file():
        scores = json.loads(saved.read_text(encoding="utf-8"))
        if scores.get("version") == config.version:
            scores["test q->p/n"] = [
                s for s, p in zip(scores["test"], data["test"], strict=True) if p["role"] in ("q-p", "q-n")
            ]
            return scores, config.threshold, config.version + " (scores saved by train.py)"
    return runtime_scores(data, directory)


def store_all(families: list[dict], floor: float, deciders: dict[str, object], k: int = 5) -> dict[str, dict]:
    """The protocol of ``aicache eval``: store every question, ask every paraphrase and near-miss (and unrelated
    question). A probe is served the first of its ``k`` nearest stored questions (cosine >= floor, most similar
    first) that the decider accepts; a paraphrase served its own question's answer is right, anything else
    served is wrong. ``deciders[name](probe, candidates, cosines) -> list[bool]``."""
    import numpy as np

    from aicache.config import Settings
    from aicache.semantic import embeddings

    stored = [f for f in families if not f.get("unrelated")]
    probes = [(p, f["id"], 1) for f in stored for p in f.get("paraphrases", [])]
    probes += [(n, f["id"], 0) for f in stored for n in f.get("negatives", [])]
    probes += [(f["question"], None, 0) for f in families if f.get("unrelated")]
    embedder = embeddings.get_embedder(Settings({}))
    questions = embedder.encode([f["question"] for f in stored])
    asked = embedder.encode([p[0] for p in probes])
    sims = asked @ questions.T
    out = {}
    for name, decide in deciders.items():
        right = wrong_para = wrong_neg = 0
        for i, (text, owner, is_para) in enumerate(probes):
            order = [j for j in np.argsort(-sims[i])[:k] if sims[i][j] >= floor]
            accepted = decide(text, [stored[j]["question"] for j in order], [float(sims[i][j]) for j in order])  # type: ignore[operator]
            served = next((stored[j]["id"] for j, ok in zip(order, accepted, strict=True) if ok), None)
            if served is None:
                continue
            if is_para and served == owner:
                right += 1
            elif is_para:
                wrong_para += 1
            else:
                wrong_neg += 1
        paras = sum(p[2] for p in probes)
        out[name] = {
            "served": right,
            "paraphrases": paras,
            "wrong_paraphrases": wrong_para,
            "wrong": wrong_neg,
            "near_misses": len(probes) - paras,
        }
    return out


Scores = dict[str, list[float]]  # split name -> one score per pair


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--work", type=Path, default=WORK_DIR)
    parser.add_argument("--decision", type=Path, default=ARTEFACT_DIR)
    parser.add_argument("--floor", type=float, default=FLOOR)
    parser.add_argument("--scores", type=Path, default=None, help="scores saved by train.py (default: work dir)")
    parser.add_argument("--extra", action="append", default=[], help="NAME=scores.json of another design's run")
    parser.add_argument("--no-store-all", action="store_true", help="pairwise figures only")
    parser.add_argument("--no-model", action="store_true", help="cosine, verifier and features only")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args(argv)


def _designs(args: argparse.Namespace, data: dict[str, list[dict]]) -> tuple[dict[str, Scores], str]:
    """Every design's scores on every split, and a line saying which model was scored and how long it took."""
    from aicache.semantic import decision, verify

    designs: dict[str, Scores] = {"cosine": {name: [r["cosine"] for r in rows] for name, rows in data.items()}}
    started = time.monotonic()
    if args.no_model or decision.read_config(args.decision).kind != "features":  # else the shipped model is this
        feats = {name: [features.features(r["a"], r["b"], r["cosine"]) for r in rows] for name, rows in data.items()}
        model = features.FeatureModel().fit(feats["train"], [r["label"] for r in data["train"]])
        designs["features"] = {name: model.predict(rows) for name, rows in feats.items()}
    feature_seconds = time.monotonic() - started
    designs[VERIFIER] = {
        name: [float(verify.verify(r["b"], r["a"], r["cosine"]).accepted) for r in rows] for name, rows in data.items()
    }
    started = time.monotonic()
    version = "(not scored)"
    if not args.no_model:
        shipped, shipped_threshold, version = model_scores(
            data, args.decision, args.scores or args.work / "scores.json"
        )
        designs[SHIPPED] = shipped
        version += f", shipped threshold {shipped_threshold:.4f}"
    scored = sum(len(v) for v in designs.get(SHIPPED, {}).values())
    for extra in args.extra:  # other designs' scores saved by train.py: NAME=PATH
        name, _, path = extra.partition("=")
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
        saved["test q->p/n"] = [
            s for s, p in zip(saved["test"], data["test"], strict=True) if p["role"] in ("q-p", "q-n")
        ]
        designs[name] = saved
    said = (
        f"decision model {version}; floor {args.floor}; features computed in {feature_seconds:.0f}s, "
        f"shipped model scored {scored} pairs in {time.monotonic() - started:.0f}s"
    )
    return designs, said


def _pairwise(designs: dict[str, Scores], data: dict[str, list[dict]], floor: float) -> list[dict]:
    """One row per design (alone, and behind the exact vetoes) and split: its calibrated threshold (the
    verifier runs at its defaults), paraphrases served, near-misses served and the bound."""
    labels = {name: [r["label"] for r in rows] for name, rows in data.items()}
    floor_ok = {name: [r["cosine"] >= floor for r in rows] for name, rows in data.items()}
    veto = {name: [features.vetoed(r["a"], r["b"]) for r in rows] for name, rows in data.items() if name != "train"}
    kinds = [calibrate.near_miss_kind(r["role"]) for r in data["calibration"]]  # the bound holds for each kind
    rows_out = []
    for design, scores in designs.items():
        for vetoes in (False, True):
            if vetoes and design in ("cosine", VERIFIER):
                continue

            def ok(split: str, vetoes: bool = vetoes) -> list[bool]:
                return [f and not (vetoes and v) for f, v in zip(floor_ok[split], veto[split], strict=True)]

            threshold = (
                VERIFIER_THRESHOLD
                if design == VERIFIER
                else calibrate.choose_threshold(
                    scores["calibration"], labels["calibration"], ok("calibration"), kinds=kinds
                )[0]
            )
            for split in (s for s in SETS if s in data):  # a smoke run's pairs have no held-out files
                counts = calibrate.count(scores[split], labels[split], threshold, ok(split))
                rows_out.append(
                    {
                        "design": design + (" + vetoes" if vetoes else ""),
                        "threshold": threshold,
                        "split": split,
                        **counts.__dict__,
                        "wrong_upper": counts.wrong_upper,
                    }
                )
    return rows_out


def _print_pairwise(rows: list[dict]) -> None:
    print("| design | threshold | split | paraphrases served | near-misses served (wrong) | 95% CP upper |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        served = f"{r['served']}/{r['positives']} = {100 * r['served'] / max(1, r['positives']):.1f}%"
        wrong = f"{r['wrong']}/{r['negatives']} = {100 * r['wrong'] / max(1, r['negatives']):.2f}%"
        bound = f"{100 * r['wrong_upper']:.2f}%"
        print(f"| {r['design']} | {r['threshold']:.4f} | {r['split']} | {served} | {wrong} | {bound} |")


def _deciders(cosine_threshold: float, directory: Path) -> dict[str, object]:
    """What decides in the store-all protocol: ``decide(probe, candidates, cosines) -> list[bool]``."""
    from aicache.config import Settings
    from aicache.semantic import decision, verify

    shipped = decision.load(Settings({"decision": {"directory": str(directory)}}))

    def shipped_model(vetoes: bool) -> object:
        def decide(q: str, cands: list[str], sims: list[float]) -> list[bool]:
            scores = shipped.score(q, cands, sims)
            return [
                s >= shipped.threshold and not (vetoes and features.vetoed(c, q))
                for s, c in zip(scores, cands, strict=True)
            ]

        return decide

    return {
        "cosine": lambda q, cands, sims: [s >= cosine_threshold for s in sims],
        VERIFIER: lambda q, cands, sims: [verify.verify(q, c, s).accepted for c, s in zip(cands, sims, strict=True)],
        SHIPPED: shipped_model(False),
        SHIPPED + " + vetoes": shipped_model(True),
    }


def _store_all_rows(deciders: dict[str, object], floor: float) -> list[dict]:
    """The store-all protocol (``aicache eval``) on the test split's families and on heldout-pairs.jsonl."""
    from training import pairs as pair_data

    test_families = [f for f in pair_data.load_families() if pair_data.split_of(f["id"]) == "test"]
    heldout = pair_data.read_jsonl(pair_data.TESTS_DATA / "heldout-pairs.jsonl")
    print()
    print("store-all protocol (aicache eval): store every question, ask every paraphrase, near-miss, unrelated")
    print("| design | set | paraphrases served right | paraphrases served wrong | near-misses served | 95% CP upper |")
    print("|---|---|---|---|---|---|")
    rows = []
    for set_name, fams in (("test split families", test_families), ("heldout-pairs.jsonl", heldout)):
        for design, r in store_all(fams, floor, deciders).items():
            upper = calibrate.cp_upper(r["wrong"], r["near_misses"])
            rows.append({"design": design, "set": set_name, **r, "wrong_upper": upper})
            served = f"{r['served']}/{r['paraphrases']} = {100 * r['served'] / r['paraphrases']:.1f}%"
            wrong = f"{r['wrong']}/{r['near_misses']} = {100 * r['wrong'] / r['near_misses']:.2f}%"
            print(f"| {design} | {set_name} | {served} | {r['wrong_paraphrases']} | {wrong} | {100 * upper:.2f}% |")
    return rows


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    os.environ.setdefault("AICACHE_HOME", tempfile.mkdtemp(prefix="aicache-compare-"))
    data = load(args.work)
    designs, said = _designs(args, data)
    print(said)
    pairwise = _pairwise(designs, data, args.floor)
    _print_pairwise(pairwise)
    figures: dict[str, list[dict]] = {"pairwise": pairwise}
    if not (args.no_model or args.no_store_all):
        cosine_threshold = next(r["threshold"] for r in pairwise if r["design"] == "cosine")
        figures["store_all"] = _store_all_rows(_deciders(cosine_threshold, args.decision), args.floor)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
