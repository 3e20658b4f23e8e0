"""Whole-process time and peak memory of an exact cache hit: `aicache ask` with stdout to a pipe.

Usage: python benchmarks/bench_exact_hit.py [--runs 15]
Target (issue 2): median <= 120 ms wall, and no torch/numpy/hnswlib/onnxruntime/httpx imported.
For reference on this machine: shell_gpt answers a repeated question from its cache in 1.22 s.
"""

from __future__ import annotations

import argparse

from _harness import aicache_exe, env_for, fresh_home, median, run_once
from tests.fakellm import FakeLLM


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    home = fresh_home("exact")
    (home / "config.toml").write_text("[cache]\nsemantic = false\n")
    server = FakeLLM()
    server.start()
    env = env_for(home, OPENAI_BASE_URL=server.openai_url, OPENAI_API_KEY="sk-bench")
    question = "how do I undo the last commit but keep the changes"
    prime = run_once([*aicache_exe(), "ask", question], env)
    assert prime.returncode == 0, prime.stderr
    runs = [run_once([*aicache_exe(), "ask", question], env) for _ in range(args.runs)]
    server.stop()
    assert all(r.returncode == 0 and b"exact hit" in r.stderr for r in runs), runs[0].stderr
    walls = [r.wall_ms for r in runs]
    print(
        f"exact hit, whole process, {args.runs} runs: median {median(walls):.0f} ms "
        f"(min {min(walls):.0f}, max {max(walls):.0f}), peak RSS median {median([r.max_rss_mb for r in runs]):.0f} MB"
    )


if __name__ == "__main__":
    main()
