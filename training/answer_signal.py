"""Does the cached *answer* tell a paraphrase from a near-miss better than the cached question does?

RESULTS.md section 14; an exploration on rounds 9 and 10's developer families, which had both been read, so no
test figure. The answers (``training/data/answers/``) were written for each family's question by helper
sessions playing the LLM, shown the question alone. Pairwise: each paraphrase or near-miss against its own
family's question; signals: the cosine with the cached question, the cosine with the cached answer, that minus
the question's own cosine with its answer, the shipped decision's score, and a logistic regression over them
fitted across families (5 folds by family). For each, the ROC AUC and the share of paraphrases above the
near-misses' top 0%, 1% and 5%.

With ``--work W`` (the directory of a ``python -m training.train --work W`` run) it also looks at the calibration
data's family pairs whose cached text is the family's question or a paraphrase, so the family's answer is the
cached answer (``families.jsonl``: an answer per family of the training and independent files, written the same
way): a regression over the decision's logit and the answer cosines is fitted on one half of the calibration
topics and thresholded on the other by the shipped rule, against the decision thresholded on that half alike.

With ``--below-floor`` it counts, on rounds 13 and 14's developer families, the pairs under the cosine floor that
reach each cosine with the cached answer (could a search of the answers find the paraphrases the floor loses?).

With ``--gate V2 D3`` (the work directories of a ``python -m training.train`` run and of a ``--answers`` run) it
applies section 15's calibration gate: both decisions thresholded by the per-kind rule on the calibration pairs
whose cached text has an answer (D3's calibration data), and the hand-written paraphrases each serves there.

    python -m training.answer_signal [--work W] [--gate V2 D3] [--below-floor]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from training.pairs import DATA, TESTS_DATA, read_jsonl

ANSWERS = DATA / "answers"
ROUNDS = ("heldout9-dev-families.jsonl", "heldout10-dev-families.jsonl")
FALSE_POSITIVE_RATES = (0.0, 0.01, 0.05)


def probes() -> list[dict[str, Any]]:
    """One row per paraphrase or near-miss of every family with an answer: its label and signals."""
    import numpy as np

    from aicache.config import Settings
    from aicache.semantic import decide, embeddings

    settings = Settings({})
    embedder, decision = embeddings.get_embedder(settings), decide.load(settings)
    rows = []
    for name in ROUNDS:
        answers = {row["id"]: row["answer"] for row in read_jsonl(ANSWERS / name)}
        for family in read_jsonl(TESTS_DATA / name):
            if family["id"] not in answers:
                continue
            question, answer = family["question"], answers[family["id"]]
            asked = [(p, 1) for p in family["paraphrases"]] + [(n, 0) for n in family["negatives"]]
            vectors = embedder.encode([question, answer, *(text for text, _ in asked)])
            own = float(vectors[0] @ vectors[1])
            for (text, label), vector in zip(asked, vectors[2:], strict=True):
                cosine = float(vector @ vectors[0])
                [verdict] = decision.judge(text, [(question, cosine)], np.vstack([vector, vectors[0]]))
                with_answer = float(vector @ vectors[1])
                rows.append(
                    {
                        "family": family["id"],
                        "label": label,
                        "question cosine": cosine,
                        "answer cosine": with_answer,
                        "answer cosine - own": with_answer - own,
                        "decision score": verdict.score or 0.0,
                    }
                )
    return rows


def above_near_misses(scores: Any, labels: Any, rate: float) -> float:
    """The share of paraphrases scoring above all but ``rate`` of the near-misses."""
    import numpy as np

    near = np.sort(scores[labels == 0])[::-1]
    k = int(np.floor(rate * len(near)))
    return float((scores[labels == 1] > (near[k] if k < len(near) else -np.inf)).mean())


def across_families(inputs: Any, labels: Any, families: Any, folds: int = 5) -> Any:
    """Out-of-fold probabilities of a logistic regression, folds by family."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    names = sorted(set(families))
    np.random.default_rng(0).shuffle(names)
    out = np.zeros(len(labels))
    for fold in range(folds):
        held = np.isin(families, names[fold::folds])
        model = LogisticRegression(max_iter=1000).fit(inputs[~held], labels[~held])
        out[held] = model.predict_proba(inputs[held])[:, 1]
    return out


def family_answers() -> dict[str, tuple[str, str]]:
    """Each family's answer and its file's name, by the family's topic as ``training.pairs`` names it."""
    out: dict[str, tuple[str, str]] = {}
    for row in read_jsonl(ANSWERS / "families.jsonl"):
        name, family = row["family"].split(":", 1)
        stem = name.removesuffix(".jsonl")
        topic = f"independent:{stem}:{family}" if stem.startswith("round") else family
        out.setdefault(topic, (row["answer"], stem))
    return out


def calibration_stack(work: Path) -> None:
    """The decision alone and stacked with the answer cosines, each thresholded by the shipped rule on the half
    of the calibration topics the stack was not fitted on."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from aicache.config import Settings
    from aicache.semantic import embeddings
    from training import calibrate

    answers = family_answers()
    pairs = json.loads((work / "pairs.json").read_text(encoding="utf-8"))["calibration"]
    scores = json.loads((work / "scores.json").read_text(encoding="utf-8"))["calibration"]
    rows = [
        (p, s) for p, s in zip(pairs, scores, strict=True) if p["role"] in CACHED_IN_FAMILY and p["topic"] in answers
    ]
    stored = np.load(work / "vectors.npz", allow_pickle=True)
    vectors = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))
    topics = sorted({p["topic"] for p, _ in rows})
    embedder = embeddings.get_embedder(Settings({}))
    answer_vectors = dict(zip(topics, embedder.encode([answers[t][0] for t in topics]), strict=True))
    labels = np.array([p["label"] for p, _ in rows])
    decision = np.array([s for _, s in rows])
    cosine = np.array([p["cosine"] for p, _ in rows])
    with_answer = np.array([float(vectors[p["b"]] @ answer_vectors[p["topic"]]) for p, _ in rows])
    own = np.array([float(vectors[p["a"]] @ answer_vectors[p["topic"]]) for p, _ in rows])
    developer = np.array(["everyday" not in answers[p["topic"]][1] for p, _ in rows])
    kinds = [calibrate.near_miss_kind(p["role"]) for p, _ in rows]
    print(f"calibration: {len(rows)} pairs ({int(labels.sum())} paraphrases, {int(developer.sum())} developer)")
    for name, values in (("question cosine", cosine), ("answer cosine", with_answer), ("decision score", decision)):
        print(f"  {name}: AUC {roc_auc_score(labels, values):.3f}")
    logit = np.log(np.clip(decision, 1e-6, 1 - 1e-6) / np.clip(1 - decision, 1e-6, 1))
    inputs = np.column_stack([logit, with_answer, with_answer - own, with_answer * cosine])
    half = np.array([int(hashlib.sha256(p["topic"].encode()).hexdigest(), 16) % 2 for p, _ in rows])
    floor = cosine >= 0.5
    for fitted in (0, 1):
        shown = half != fitted
        stack = LogisticRegression(max_iter=2000).fit(inputs[~shown], labels[~shown]).predict_proba(inputs)[:, 1]
        for name, values in (("decision", decision), ("decision + answer", stack)):
            threshold, counts = calibrate.choose_threshold(
                list(values[shown]),
                list(labels[shown]),
                list(floor[shown]),
                kinds=[k for k, s in zip(kinds, shown, strict=True) if s],
            )
            served = shown & (labels == 1) & floor & (values >= threshold)
            print(
                f"  half {1 - fitted} | {name} @ {threshold:.4f} | paraphrases {int(served.sum())}/"
                f"{int((shown & (labels == 1)).sum())} | developer {int((served & developer).sum())}/"
                f"{int((shown & (labels == 1) & developer).sum())} | near-misses {counts.wrong}/{counts.negatives}"
            )


def gate(v2_work: Path, d3_work: Path) -> None:
    """Section 15's calibration gate: V2 and D3 on D3's calibration pairs, each at its own per-kind threshold."""
    from training import calibrate
    from training.train import FLOOR, HAND_WRITTEN_PARAPHRASES

    def calibration(work: Path) -> dict[tuple[str, str, str], tuple[dict[str, Any], float]]:
        pairs = json.loads((work / "pairs.json").read_text(encoding="utf-8"))["calibration"]
        scores = json.loads((work / "scores.json").read_text(encoding="utf-8"))["calibration"]
        return {(p["a"], p["b"], p["role"]): (p, s) for p, s in zip(pairs, scores, strict=True)}

    d3 = calibration(d3_work)
    v2 = calibration(v2_work)
    keys = [k for k in d3 if k in v2]
    print(f"D3's calibration pairs: {len(d3)}; also in V2's: {len(keys)}")
    for name, table in (("V2", v2), ("D3", d3)):
        rows = [table[k] for k in keys]
        labels = [p["label"] for p, _ in rows]
        scores = [s for _, s in rows]
        floor = [p["cosine"] >= FLOOR for p, _ in rows]
        kinds = [calibrate.near_miss_kind(p["role"]) for p, _ in rows]
        threshold, counts = calibrate.choose_threshold(scores, labels, floor, kinds=kinds)
        hand = [
            ok and s >= threshold
            for (p, s), ok in zip(rows, floor, strict=True)
            if p["label"] and p["role"] in HAND_WRITTEN_PARAPHRASES
        ]
        family = [
            ok and s >= threshold
            for (p, s), ok in zip(rows, floor, strict=True)
            if p["label"] and p["role"] in ("q-p", "p-q", "p-p")
        ]
        print(
            f"{name} @ {threshold:.4f}: hand-written paraphrases {sum(hand)}/{len(hand)}"
            f" | of families {sum(family)}/{len(family)} | of a/b pairs {sum(hand) - sum(family)}"
            f" | near-misses {counts.wrong}/{counts.negatives} (CP upper {counts.wrong_upper:.2%})"
        )


CACHED_IN_FAMILY = ("q-p", "p-q", "p-p", "q-n", "p-n")  # the cached text is the question or a paraphrase
BELOW_FLOOR_ROUNDS = ("heldout13", "heldout14")
ANSWER_COSINES = (0.4, 0.5, 0.6, 0.7)


def below_floor(floor: float = 0.5) -> None:
    """The developer pairs of rounds 13 and 14 that no lookup judges (question cosine under ``floor``): how many
    paraphrases and near-misses reach each cosine with the cached answer (README, *Semantic correctness*)."""
    from aicache.config import Settings
    from aicache.semantic import embeddings

    asked = []
    for prefix in BELOW_FLOOR_ROUNDS:
        for family in read_jsonl(TESTS_DATA / f"{prefix}-dev-families.jsonl"):
            for texts, label in ((family["paraphrases"], 1), (family["negatives"], 0)):
                asked += [(family["question"], family["answer"], text, label) for text in texts]
    texts = sorted({t for row in asked for t in row[:3]})
    vectors = dict(zip(texts, embeddings.get_embedder(Settings({})).encode(texts), strict=True))
    under = [
        (float(vectors[b] @ vectors[answer]), label) for a, answer, b, label in asked if vectors[a] @ vectors[b] < floor
    ]
    print(
        f"under the floor {floor}: {sum(y for _, y in under)} paraphrases, {sum(1 - y for _, y in under)} near-misses"
    )
    for least in ANSWER_COSINES:
        reach = [y for cosine, y in under if cosine >= least]
        print(
            f"cosine with the cached answer >= {least}: {sum(reach)} paraphrases, {len(reach) - sum(reach)} near-misses"
        )


def main(argv: list[str] | None = None) -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--work", type=Path, default=None, help="a training run's --work directory")
    parser.add_argument("--gate", type=Path, nargs=2, metavar=("V2", "D3"), help="section 15's calibration gate")
    parser.add_argument("--below-floor", action="store_true", help="rounds 13-14's developer pairs under the floor")
    args = parser.parse_args(argv)
    if args.gate:
        gate(*args.gate)
        return
    if args.below_floor:
        below_floor()
        return
    rows = probes()
    labels, families = np.array([r["label"] for r in rows]), np.array([r["family"] for r in rows])
    signals = {k: np.array([r[k] for r in rows]) for k in rows[0] if k not in ("family", "label")}
    logit = np.log(np.clip(signals["decision score"], 1e-6, 1 - 1e-6) / np.clip(1 - signals["decision score"], 1e-6, 1))
    without = np.column_stack([logit, signals["question cosine"]])
    signals["regression: score, question cosine"] = across_families(without, labels, families)
    answered = np.column_stack([without, signals["answer cosine"], signals["answer cosine - own"]])
    signals["regression: those + both answer cosines"] = across_families(answered, labels, families)
    print(f"{len(rows)} probes ({int(labels.sum())} paraphrases) of {len(set(families))} families")
    header = " | ".join(f"paraphrases above all but {r:.0%} of near-misses" for r in FALSE_POSITIVE_RATES)
    print(f"signal | AUC | {header}")
    for name, scores in signals.items():
        shares = " | ".join(f"{above_near_misses(scores, labels, r):.1%}" for r in FALSE_POSITIVE_RATES)
        print(f"{name} | {roc_auc_score(labels, scores):.3f} | {shares}")
    if args.work is not None:
        calibration_stack(args.work)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
