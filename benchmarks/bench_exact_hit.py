"""Whole-process time and peak memory of an exact cache hit: `aicache ask` with stdout to a pipe.

Measured twice: with the warm helper running (the normal case after the first `ask`), and with it turned off
(AICACHE_HELPER=0: every run imports and opens everything itself, as the very first `ask` does).

Usage: python benchmarks/bench_exact_hit.py [--runs 15]
Target (issue 2): median <= 120 ms wall, and no torch/numpy/hnswlib/onnxruntime/httpx imported.
For reference on this machine: shell_gpt answers a repeated question from its cache in 1.22 s.
"""

from __future__ import annotations

import argparse

from _harness import aicache_exe, env_for, fresh_home, run_once, runs_per_mode, wall_summary
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
    prime = run_once([*aicache_exe(), "ask", question], {**env, "AICACHE_HELPER": "0"})
    assert prime.returncode == 0, prime.stderr
    print(f"exact hit, whole process, {args.runs} runs each:")
    for mode, runs, helper_rss in runs_per_mode([*aicache_exe(), "ask", question], env, args.runs):
        assert all(r.returncode == 0 and b"exact hit" in r.stderr for r in runs), runs[0].stderr
        print(f"  {mode}: {wall_summary(runs, helper_rss)}")
    server.stop()


if __name__ == "__main__":
    main()
