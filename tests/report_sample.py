"""Sample inputs for the learn report, in the shapes ``aicache learn`` passes to ``aicache.learn.report.render``.

Shared by tests/test_report.py and benchmarks/report_screenshot.py. The curve is computed from seeded synthetic
scores and the bounds by aicache.stats, so the figures are consistent with each other (served counts fall as the
threshold rises, each bound is above its rate) like a real run's.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from aicache import stats

DAY = 86_400
START = int(dt.datetime(2026, 10, 20, tzinfo=dt.UTC).timestamp())


def outcome(threshold: float, right: list[float], wrong: list[float]) -> dict[str, Any]:
    """The OUT shape: what ``threshold`` serves of the right and the wrong pairs' scores."""
    served = sum(score >= threshold for score in right)
    wrong_served = sum(score >= threshold for score in wrong)
    return {
        "threshold": round(threshold, 4),
        "served": served,
        "right_pairs": len(right),
        "wrong": wrong_served,
        "wrong_pairs": len(wrong),
        "served_rate": round(served / len(right), 4) if right else 0.0,
        "wrong_rate": round(wrong_served / len(wrong), 4) if wrong else 0.0,
        "wrong_upper95": round(stats.upper_bound(wrong_served, len(wrong)), 4),
    }


def scores(seed: int = 7) -> tuple[list[float], list[float]]:
    """Scores of right pairs (mostly high) and wrong pairs (mostly lower), as a decision model would give."""
    rng = random.Random(seed)
    right = [min(1.0, max(0.0, rng.gauss(0.84, 0.07))) for _ in range(420)]
    wrong = [min(1.0, max(0.0, rng.gauss(0.62, 0.09))) for _ in range(640)]
    return right, wrong


def result(**overrides: Any) -> dict[str, Any]:
    """A result with every section filled in."""
    right, wrong = scores()
    points = [outcome(0.5 + i * 0.01, right, wrong) for i in range(50)]
    current = 0.9
    # The most permissive measured threshold within the budget, as the calibration would fit it.
    fitted = min(p["threshold"] for p in points if p["wrong_upper95"] <= 0.01)
    found: dict[str, Any] = {
        "schema": "aicache.learn/1",
        "window": {"from": START, "to": START + 44 * DAY},
        "counts": {
            "labels": 1060,
            "by_source": {"feedback": 212, "refresh": 48, "shadow": 300, "pairs": 500},
            "episodes": 5120,
        },
        "decision": "model:minilm-head-3",
        "max_wrong": 0.01,
        "calibrations": [
            {
                "group": "all",
                "current_threshold": current,
                "fitted_threshold": fitted,
                "fit_pairs": 1590,
                "test_before": outcome(current, right, wrong),
                "test_after": outcome(fitted, right, wrong),
                "accepted": True,
                "why": "serves more of the newer part within the bound",
            },
            {
                "group": "git-commit-message",
                "current_threshold": current,
                "fitted_threshold": None,
                "fit_pairs": 31,
                "test_before": outcome(current, right[:20], wrong[:12]),
                "test_after": None,
                "accepted": False,
                "why": "too few wrong pairs to bound: 299 needed, 12 seen; falls back to the global setting",
            },
        ],
        "refit": {
            "base": "pair-features-68ba177975bb",
            "version": "pair-features-42ba945dd4a7",
            "threshold": 0.7644,
            "user_rows": 163,
            "shipped_rows": 20000,
            "user_share": 0.3,
            "newer_before": outcome(current, right, wrong),
            "newer_after": outcome(fitted, right, wrong),
            "shipped_calibration_before": outcome(current, right, wrong),
            "shipped_calibration_after": outcome(fitted, right, wrong),
            "accepted": False,
            "why": "the threshold alone serves as much",
        },
        "curve": {
            "group": "all",
            "current": current,
            "fitted": fitted,
            "points": points,
        },
        "search": {
            "hnsw": [
                {"M": m, "ef": ef, "recall_at_1": recall, "p50_ms": ms}
                for m, row in ((16, (0.912, 0.961, 0.987, 0.996, 0.999)), (32, (0.948, 0.982, 0.995, 0.999, 1.0)))
                for ef, recall, ms in zip(
                    (16, 32, 64, 128, 256),
                    row,
                    [base * (1.4 if m == 32 else 1.0) for base in (0.11, 0.17, 0.29, 0.52, 0.95)],
                    strict=True,
                )
            ],
            "candidates": [{"k": 1, "recall": 0.91}, {"k": 3, "recall": 0.97}, {"k": 5, "recall": 0.99}],
            "vetoes": {"on": outcome(fitted, right, wrong), "off": outcome(fitted, right, wrong[:-40])},
            "embedding_models": ["sentence-transformers/all-MiniLM-L6-v2"],
            "chosen": {"index.ef_search": 64},
        },
        "proposal": {
            "slug": "threshold",
            "files": ["settings.toml"],
            "diff": (
                "--- a/settings.toml\n+++ b/settings.toml\n@@ -1,3 +1,3 @@\n [cache]\n"
                f"-threshold = {current}\n+threshold = {fitted}\n ef_search = 64\n"
            ),
        },
        "proposals": [
            {
                "id": 1,
                "branch": "aicache/learn/2026-11-02-threshold",
                "status": "applied",
                "created": START + 13 * DAY,
                "summary": "threshold 0.95 -> 0.9",
            },
            {
                "id": 2,
                "branch": "aicache/learn/2026-11-20-ef-search",
                "status": "rejected",
                "created": START + 31 * DAY,
                "summary": "index.ef_search 64 -> 32",
            },
            {
                "id": 3,
                "branch": "aicache/learn/2026-12-03-threshold",
                "status": "proposed",
                "created": START + 44 * DAY,
                "summary": f"threshold {current} -> {fitted}",
            },
        ],
    }
    found.update(overrides)
    return found


def history(days: int = 45, seed: int = 11) -> list[dict[str, Any]]:
    """One row per day, with the hit rate growing as the cache fills."""
    rng = random.Random(seed)
    rows = []
    for i in range(days):
        asks = rng.randint(20, 90) if i % 7 not in (5, 6) else rng.randint(0, 8)
        share = min(0.7, 0.15 + i * 0.012)
        exact = sum(rng.random() < share * 0.6 for _ in range(asks))
        semantic = sum(rng.random() < share * 0.4 for _ in range(asks - exact))
        hits = exact + semantic
        rows.append(
            {
                "day": (dt.date(2026, 10, 20) + dt.timedelta(days=i)).isoformat(),
                "asks": asks,
                "exact_hits": exact,
                "semantic_hits": semantic,
                "misses": asks - hits,
                "saved_seconds": round(hits * rng.uniform(2.5, 6.0), 2),
                "saved_cost": round(hits * rng.uniform(0.0004, 0.002), 5),
            }
        )
    return rows


def thin_result() -> dict[str, Any]:
    """What a new user's first ``learn`` produces: no labels, nothing fitted, nothing searched or proposed."""
    return {
        "schema": "aicache.learn/1",
        "window": {"from": None, "to": None},
        "counts": {"labels": 0, "by_source": {"feedback": 0, "refresh": 0, "shadow": 0, "pairs": 0}, "episodes": 0},
        "decision": "cosine",
        "max_wrong": 0.01,
        "calibrations": [],
        "curve": {"group": "all", "current": 0.86, "fitted": None, "points": []},
        "search": None,
        "proposal": None,
        "proposals": [],
    }
