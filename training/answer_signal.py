"""Does the cached *answer* tell a paraphrase from a near-miss better than the cached question does?

RESULTS.md section 14; an exploration on rounds 9 and 10's developer families, which had both been read, so no
test figure. The answers (``training/data/answers/``) were written for each family's question by helper
sessions playing the LLM, shown the question alone. Pairwise: each paraphrase or near-miss against its own
family's question; signals: the cosine with the cached question, the cosine with the cached answer, that minus
the question's own cosine with its answer, the shipped decision's score, and a logistic regression over them
fitted across families (5 folds by family). For each, the ROC AUC and the share of paraphrases above the
near-misses' top 0%, 1% and 5%.

    python -m training.answer_signal
"""

from __future__ import annotations

import os
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


def main() -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

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


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
