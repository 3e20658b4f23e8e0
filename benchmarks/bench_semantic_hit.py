"""Whole-process time and peak memory of a semantic hit: `aicache ask` with a paraphrase of a cached question.

Usage: python benchmarks/bench_semantic_hit.py [--runs 11] [--entries 1000]
The store is primed with --entries questions in the same partition (one of them the original), so the lookup
searches a real index. Target (issue 3): median <= 400 ms and peak RSS <= 300 MB, whole process.
"""

from __future__ import annotations

import argparse

from _harness import aicache_exe, env_for, fresh_home, median, run_once
from tests.fakellm import FakeLLM

ORIGINAL = "how do I undo my last commit but keep the changes"
PARAPHRASE = "how can I undo the last commit and keep my changes"


def _prime(home_env: dict[str, str], entries: int) -> None:
    import os
    import sys

    os.environ.update(home_env)
    from aicache import config, db
    from aicache.ask import AskContext, ask
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
    args = parser.parse_args()
    home = fresh_home("semantic")
    server = FakeLLM()
    server.start()
    env = env_for(home, OPENAI_BASE_URL=server.openai_url, OPENAI_API_KEY="sk-bench")
    first = run_once([*aicache_exe(), "ask", ORIGINAL], env)
    assert first.returncode == 0, first.stderr
    _prime(env, args.entries)
    runs = [run_once([*aicache_exe(), "ask", PARAPHRASE], env) for _ in range(args.runs)]
    server.stop()
    assert all(r.returncode == 0 and b"semantic hit" in r.stderr for r in runs), runs[0].stderr
    walls = [r.wall_ms for r in runs]
    rss = [r.max_rss_mb for r in runs]
    print(
        f"semantic hit, whole process, {args.entries} entries, {args.runs} runs: median {median(walls):.0f} ms "
        f"(min {min(walls):.0f}, max {max(walls):.0f}), peak RSS median {median(rss):.0f} MB (max {max(rss):.0f})"
    )


if __name__ == "__main__":
    main()
