"""Time of the hit decision: scoring one question against up to 5 cached candidates with the shipped model.

In-process, model loaded (as in the warm helper): the median of ``--runs`` calls of ``score`` for 1, 3 and 5
real candidates of tests/data (questions the verifier has not analysed yet in this process), with the cosine
similarities given (the semantic tier has them from the index) and without (``score`` then embeds the texts).
As in the tier, the question is embedded just before it is judged and the candidates' vectors come from before
(the index); the embedder keeps the token embeddings of the texts it embedded last (``embeddings.TOKEN_MEMO``),
so a candidate judged before in the process costs less: ``--memo 1`` measures every candidate as new.
A cross-encoder's first load in a fresh home merges the adapter and exports ONNX (reported separately).
``--answers`` times the model that also reads the cached answer (given each candidate's answer vector; the
answers are the dev families' in training/data/answers/), and embedding one answer, which a miss pays once to
store it.
Target (issue 10): scoring up to ``cache.candidates`` (5) pairs <= 30 ms.

Usage: python benchmarks/bench_decision.py [--runs 51] [--threads N] [--answers]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=51)
    parser.add_argument("--decision", default=None, help="a decision model directory (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: as the embedder)")
    parser.add_argument("--memo", type=int, default=None, help="texts whose token embeddings the embedder keeps")
    parser.add_argument("--answers", action="store_true", help="the model that also reads the cached answer")
    args = parser.parse_args()
    os.environ.setdefault("AICACHE_HOME", tempfile.mkdtemp(prefix="aicache-bench-decision-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from aicache.config import Settings
    from aicache.semantic import decision, embeddings

    if args.memo is not None:
        embeddings.TOKEN_MEMO = args.memo  # read when the embedder is made, below

    families = [json.loads(line) for line in (ROOT / "tests" / "data" / "dev-pairs.jsonl").open(encoding="utf-8")]
    families = [f for f in families if not f.get("unrelated")]
    settings = Settings({"decision": {"directory": args.decision}} if args.decision else {})
    started = time.perf_counter()
    prepared = decision.is_prepared(settings)
    model = decision.load(settings, threads=args.threads)
    reader = decision.load_answer_model(settings) if args.answers else None
    if args.answers and reader is None:
        raise SystemExit("no answer model: the shipped decision directory has none, or decision.answers is off")
    model = reader or model
    load_ms = (time.perf_counter() - started) * 1000
    print(f"decision model {model.version}: {'load' if prepared else 'merge + export + load'} {load_ms:.0f} ms")
    embedder = embeddings.get_embedder(settings)
    texts = sorted({t for f in families for t in (f["question"], *f["paraphrases"], *f["negatives"])})
    index = dict(zip(texts, embedder.encode(texts), strict=True))  # in bulk: no token embeddings kept
    answers = answer_vectors(embedder, families, args.runs) if args.answers else {}
    for given in (True, False):
        for k in (1, 3, 5):
            times = []
            for i in range(args.runs):
                family = families[(i + 17 * k + (40 if given else 0)) % len(families)]
                candidates = [*family["paraphrases"], *family["negatives"], family["question"]][:k]
                question = family["paraphrases"][0] if k > 1 else family["question"]
                vectors = np.vstack([embedder.encode([question]), *(index[c][None] for c in candidates)])
                sims = [float(s) for s in vectors[1:] @ vectors[0]] if given else None
                t0 = time.perf_counter()
                given_answers = np.vstack([answers[family["id"]]] * k) if args.answers else None
                model.score(question, candidates, sims, vectors if given else None, given_answers)
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            how = (
                "similarities and vectors given (as the semantic tier calls it)"
                if given
                else "texts embedded by score()"
            )
            print(
                f"{k} candidate(s), {how}: median {statistics.median(times):.1f} ms, "
                f"p90 {times[int(len(times) * 0.9)]:.1f} ms ({args.runs} runs)"
            )


def answer_vectors(embedder: object, families: list[dict], runs: int) -> dict[str, object]:
    """Each dev family's answer vector (one answer per family: its candidates share it here), and the time to
    embed one answer, as a miss does to store it."""
    rows = [json.loads(line) for line in (ROOT / "training" / "data" / "answers" / "families.jsonl").open()]
    text = {r["family"].removeprefix("dev-pairs.jsonl:"): r["answer"] for r in rows if r["family"].startswith("dev-")}
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        embedder.encode([text[families[i % len(families)]["id"]]])  # type: ignore[attr-defined]
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    print(f"embedding one answer: median {statistics.median(times):.1f} ms, p90 {times[int(len(times) * 0.9)]:.1f} ms")
    vectors = embedder.encode([text[f["id"]] for f in families])  # type: ignore[attr-defined]
    return {f["id"]: v for f, v in zip(families, vectors, strict=True)}


if __name__ == "__main__":
    main()
