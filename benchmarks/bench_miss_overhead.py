"""What a cache miss adds to the provider's own time to first byte, whole process.

A local OpenAI-compatible server answers every request after a fixed delay (default 300 ms). Each run asks a new
question (a miss) with stdout to a pipe and measures the time from process start to the first answer byte.
Printed: aicache's first byte minus the server delay (what the user waits beyond the provider), and for
comparison the same for a minimal Python script that streams the same request with httpx and no cache.
Each is measured with the warm helper running (the normal case after the first `ask`) and without it
(AICACHE_HELPER=0: every run imports Python's HTTP stack, and with the semantic tier on, loads the model).

Usage: python benchmarks/bench_miss_overhead.py [--runs 11] [--delay 0.3]
Target (issue 2): aicache adds <= 60 ms.
"""

from __future__ import annotations

import argparse
import sys
import uuid

from _harness import HELPER_MODES, aicache_exe, env_for, fresh_home, helper_mode, median, run_once
from tests.fakellm import FakeLLM

BARE_CLIENT = r"""
import sys, httpx
body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": sys.argv[2]}]}
with httpx.stream("POST", sys.argv[1] + "/chat/completions", json=body, timeout=30) as response:
    for line in response.iter_lines():
        if line.startswith("data: ") and '"content"' in line:
            sys.stdout.write(line); sys.stdout.flush()
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--delay", type=float, default=0.3)
    args = parser.parse_args()
    home = fresh_home("miss")
    server = FakeLLM(delay=args.delay)
    server.start()
    delay_ms = args.delay * 1000
    results = {}
    for semantic in ("false", "true"):
        (home / "config.toml").write_text(f"[cache]\nsemantic = {semantic}\n")
        env = env_for(home, OPENAI_BASE_URL=server.openai_url, OPENAI_API_KEY="sk-bench")
        prime = run_once([*aicache_exe(), "ask", "prime the store"], {**env, "AICACHE_HELPER": "0"})
        assert prime.returncode == 0, prime.stderr  # the database and, if on, the model exist from here on
        for mode in HELPER_MODES:
            with helper_mode(env, mode) as mode_env:
                argv = [*aicache_exe(), "ask"]
                runs = [run_once([*argv, f"question {uuid.uuid4()}"], mode_env) for _ in range(args.runs)]
            assert all(r.returncode == 0 for r in runs), runs[0].stderr
            label = f"{mode}, semantic tier {'on' if semantic == 'true' else 'off'}"
            results[label] = median([r.first_byte_ms or 0 for r in runs]) - delay_ms
    bare = [
        run_once([sys.executable, "-c", BARE_CLIENT, server.openai_url, f"q {uuid.uuid4()}"], env_for(home))
        for _ in range(args.runs)
    ]
    server.stop()
    bare_overhead = median([r.first_byte_ms or 0 for r in bare]) - delay_ms
    print(f"miss, whole process, server delay {delay_ms:.0f} ms, {args.runs} runs (median first byte - delay):")
    for label, overhead in results.items():
        print(f"  aicache ask ({label}): +{overhead:.0f} ms")
    print(f"  bare httpx script, no cache: +{bare_overhead:.0f} ms")


if __name__ == "__main__":
    main()
