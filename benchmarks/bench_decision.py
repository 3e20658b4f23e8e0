"""Time of the hit decision: scoring one question against up to 5 cached candidates with the shipped model.

In-process, model loaded (as in the warm helper): the median of ``--runs`` calls of ``PairModel.score`` for
1, 3 and 5 real candidates of tests/data. The first run in a fresh home merges the adapter and exports the
model to ONNX (reported separately). Target (issue 10): scoring up to ``cache.candidates`` (5) pairs <= 30 ms.

Usage: python benchmarks/bench_decision.py [--runs 51] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=51)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: as the embedder)")
    args = parser.parse_args()
    os.environ.setdefault("AICACHE_HOME", tempfile.mkdtemp(prefix="aicache-bench-decision-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from aicache.config import Settings
    from aicache.semantic import decision

    families = [json.loads(line) for line in (ROOT / "tests" / "data" / "dev-pairs.jsonl").open(encoding="utf-8")]
    families = [f for f in families if not f.get("unrelated")]
    settings = Settings({})
    started = time.perf_counter()
    prepared = decision.is_prepared(settings)
    model = decision.load(settings, threads=args.threads)
    load_ms = (time.perf_counter() - started) * 1000
    print(f"decision model {model.version}: {'load' if prepared else 'merge + export + load'} {load_ms:.0f} ms")
    for k in (1, 3, 5):
        times = []
        for i in range(args.runs):
            family = families[i % len(families)]
            candidates = [*family["paraphrases"], *family["negatives"], family["question"]][:k]
            question = family["paraphrases"][0] if k > 1 else family["question"]
            t0 = time.perf_counter()
            model.score(question, candidates)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        print(
            f"{k} candidate(s): median {statistics.median(times):.1f} ms, p90 {times[int(len(times) * 0.9)]:.1f} ms "
            f"({args.runs} runs; symmetric={model.config.symmetric})"
        )


if __name__ == "__main__":
    main()
