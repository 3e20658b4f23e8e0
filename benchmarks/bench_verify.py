"""The verifier's cost per candidate pair, in-process: it runs on every semantic candidate of every lookup.

Pairs of questions that differ in a number, so the verifier's per-text caches never answer for it, judged one
after another with the word lists already loaded. Printed: the median over several rounds of the time per pair.

Usage: python benchmarks/bench_verify.py [--pairs 500] [--rounds 7]
Target (semantic tier): under 1 ms per pair, so five candidates stay far below the embedding's ~10 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _harness import ROOT  # noqa: F401  (puts the checkout on sys.path)
from aicache.semantic.verify import load_lexicon, verify

HIGH = 0.9  # above every threshold: the rules decide, as they do for a real candidate


def per_pair_ms(pairs: int, offset: int) -> float:
    questions = [
        (f"how do I sort list number {i} descending in python", f"sort list {i} ascending python")
        for i in range(offset, offset + pairs)
    ]
    started = time.perf_counter()
    for query, candidate in questions:
        verify(query, candidate, HIGH)
    return (time.perf_counter() - started) * 1000 / pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    load_lexicon()
    # a new range of numbers every round: each pair is judged for the first time
    rounds = [per_pair_ms(options.pairs, r * options.pairs) for r in range(options.rounds)]
    print(
        f"verifier: {statistics.median(rounds):.3f} ms per uncached pair (median of {options.rounds} rounds "
        f"of {options.pairs}; min {min(rounds):.3f}, max {max(rounds):.3f}); target < 1 ms"
    )


if __name__ == "__main__":
    main()
