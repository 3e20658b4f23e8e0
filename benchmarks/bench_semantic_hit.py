"""Whole-process time and peak memory of a semantic hit: `aicache ask` with a paraphrase of a cached question.

Measured with the warm helper running (the normal case after the first `ask`; its own memory is printed too)
and with it turned off (AICACHE_HELPER=0: every run loads onnxruntime, the model and the index itself).

Usage: python benchmarks/bench_semantic_hit.py [--runs 11] [--entries 1000] [--synthetic 0]
The store is primed with --entries real questions in the same partition (one of them the original). A partition
of up to ``cache.exact_scan_max`` (2,000) vectors is searched in SQLite; ``--synthetic 100000`` adds that many
entries with random vectors, so the lookup goes through the hnswlib index: without the helper each run loads
it from disk, the helper holds it in memory. Target (issue 3): median <= 400 ms and peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from _harness import aicache_exe, env_for, fresh_home, run_once, runs_per_mode, wall_summary
from tests.fakellm import FakeLLM

ORIGINAL = "how do I undo my last commit but keep the changes"
PARAPHRASE = "how to undo my last commit but keep the changes"  # served by the shipped model (score 0.92)


def _add_synthetic(count: int) -> None:
    """``count`` more entries in the original's partition with random unit vectors (embedding 100,000 questions
    would take ~6 minutes), and the index rebuilt over them: a store whose lookups must load the index."""
    import numpy as np

    from aicache import config, db
    from aicache.semantic import index, tier

    if count == 0:
        return
    settings = config.load()
    conn = db.connect()
    model = tier.model_id(settings)
    partition, dim = conn.execute("SELECT partition_key, length(embedding) / 4 FROM entries LIMIT 1").fetchone()
    rng = np.random.default_rng(7)
    for start in range(0, count, 10_000):
        vectors = rng.normal(size=(min(10_000, count - start), dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with db.write_transaction(conn):
            conn.executemany(
                "INSERT INTO entries (exact_key, partition_key, question, answer, embedding, embed_model, created_at)"
                " VALUES (?, ?, ?, 'filler answer', ?, ?, 0)",
                [
                    (f"synthetic-{start + i}", partition, f"synthetic question {start + i}", v.tobytes(), model)
                    for i, v in enumerate(vectors)
                ],
            )
    index.rebuild(conn, model, dim)
    conn.close()


def _prime(entries: int) -> None:
    """Fill the store (run in its own process: Linux carries a parent's peak RSS over to the processes it
    starts, so loading the model here would inflate every measured run's figure)."""
    from aicache import config, db
    from aicache.flow import AskContext, ask
    from aicache.prepare import RawAsk, prepare

    settings = config.load()
    ctx = AskContext(settings=settings, conn=db.connect(), api_key="sk-bench")
    for number in range(entries - 1):
        raw = RawAsk(question=f"filler question number {number} about topic {number * 7919 % 1000}")
        ask(prepare(raw, settings).request, ctx, lambda _t: None)
        if number % 200 == 0:
            print(f"  primed {number}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--synthetic", type=int, default=0, help="add this many entries with random vectors")
    parser.add_argument("--prime", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prime:
        _prime(args.entries)
        _add_synthetic(args.synthetic)
        return
    home = fresh_home("semantic")
    server = FakeLLM()
    server.start()
    env = env_for(home, OPENAI_BASE_URL=server.openai_url, OPENAI_API_KEY="sk-bench")
    first = run_once([*aicache_exe(), "ask", ORIGINAL], {**env, "AICACHE_HELPER": "0"})
    assert first.returncode == 0, first.stderr
    prime = [sys.executable, __file__, "--prime", "--entries", str(args.entries), "--synthetic", str(args.synthetic)]
    subprocess.run(prime, env=env, check=True)
    synthetic = f" + {args.synthetic:,} with random vectors (the lookup loads the index)" if args.synthetic else ""
    print(f"semantic hit, whole process, {args.entries:,} entries{synthetic}, {args.runs} runs each:")
    for mode, runs, helper_rss in runs_per_mode([*aicache_exe(), "ask", PARAPHRASE], env, args.runs):
        assert all(r.returncode == 0 and b"semantic hit" in r.stderr for r in runs), runs[0].stderr
        print(f"  {mode}: {wall_summary(runs, helper_rss)}")
    server.stop()


if __name__ == "__main__":
    main()
