"""An LLM judge whose rulings come from a file: the hit decision measured with a judge no API can reach.

    python benchmarks/judge_by_hand.py collect FILE... --out requests.jsonl [--gray-zone W] [--floor F] [--store-all]
    python benchmarks/judge_by_hand.py replay FILE... --rulings R... [--gray-zone W] [--floor F] [--store-all]

Both passes run the real command, ``aicache eval FILE --pairwise --judge --json`` (without ``--pairwise`` for
``--store-all``), in a process of its own, with the judge pointed at a local server on 127.0.0.1 that speaks the
OpenAI wire format (``tests/fakellm.py``).

``collect`` records every request the judge sends (an id, aicache's system message and prompt) and replies NO;
with ``judge.max_candidates`` 1 the requests do not depend on the replies, so one pass sees them all. Its table is
the decision alone. Whoever judges (a person, or an LLM session shown the requests file and nothing else) writes
one ``{"id": ..., "reply": ...}`` line per request. ``replay`` answers each request with its recorded reply; a
request without one gets a reply that is neither YES nor NO, which the eval counts as unanswered (a NO).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import aicache_exe
from aicache.semantic.decide import GRAY_ZONE
from tests.fakellm import FakeLLM

JUDGE_MODEL = "judge-by-hand"
NO_RULING = "no ruling recorded"
Responder = Callable[[dict[str, Any]], str | None]  # a request's body -> the judge's reply (None: not the judge's)


def request_id(body: dict[str, Any]) -> str:
    """The same request gets the same id in both passes: a hash of what the judge is shown."""
    shown = json.dumps(body.get("messages", []), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(shown.encode("utf-8")).hexdigest()[:16]


def shown(body: dict[str, Any]) -> dict[str, str]:
    """The system message and the prompt, as the judge model reads them."""
    by_role = {m["role"]: m["content"] for m in body.get("messages", [])}
    return {"system": by_role.get("system", ""), "prompt": by_role.get("user", "")}


def judge_settings(url: str, gray_zone: float, floor: float | None = None) -> dict[str, Any]:
    """The settings that point the judge at the local server: one candidate per lookup, so that the requests do
    not depend on the replies; ``floor``: the cosine a candidate needs to be judged at all (``cache.threshold``)."""
    judge = {"model": JUDGE_MODEL, "provider": "openai", "max_candidates": 1, "gray_zone": gray_zone, "timeout": 60}
    tables: dict[str, Any] = {"judge": judge, "providers": {"openai": {"base_url": url}}}
    return tables | ({"cache": {"threshold": floor}} if floor is not None else {})


def write_config(home: Path, url: str, gray_zone: float, floor: float | None) -> None:
    tables = judge_settings(url, gray_zone, floor)
    flat = {name: values for name, values in tables.items() if name != "providers"}
    flat["providers.openai"] = tables["providers"]["openai"]
    lines = [
        line
        for name, values in flat.items()
        for line in (f"[{name}]", *(f"{key} = {json.dumps(value)}" for key, value in values.items()), "")
    ]
    (home / "config.toml").write_text("\n".join(lines), encoding="utf-8")


def load_rulings(paths: list[Path]) -> dict[str, str]:
    rulings = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                ruling = json.loads(line)
                rulings[ruling["id"]] = str(ruling["reply"])
    return rulings


def replaying(rulings: dict[str, str]) -> Responder:
    """The server's judge: each request answered with its recorded reply (None: not a judge's request)."""

    def answer(body: dict[str, Any]) -> str | None:
        if body.get("model") != JUDGE_MODEL:
            return None
        return rulings.get(request_id(body), NO_RULING)

    return answer


def run_eval(path: Path, home: Path, pairwise: bool) -> dict[str, Any]:
    env = os.environ | {"AICACHE_HOME": str(home), "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": "judge-by-hand"}
    argv = [*aicache_exe(), "eval", str(path), *(["--pairwise"] if pairwise else []), "--judge", "--json"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def evaluate(files: list[Path], args: argparse.Namespace, reply: Responder) -> dict[str, dict[str, Any]]:
    server = FakeLLM(respond=reply).start()
    try:
        with tempfile.TemporaryDirectory(prefix="aicache-judge-by-hand-") as home:
            write_config(Path(home), server.openai_url, args.gray_zone, args.floor)
            return {path.name: run_eval(path, Path(home), not args.store_all) for path in files}
    finally:
        server.stop()


def collect(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    requests: dict[str, dict[str, str]] = {}

    def record(body: dict[str, Any]) -> str | None:
        if body.get("model") != JUDGE_MODEL:
            return None
        requests.setdefault(request_id(body), shown(body))
        return "NO"

    reports = evaluate(args.files, args, record)
    with args.out.open("w", encoding="utf-8") as out:
        for rid, seen in requests.items():
            out.write(json.dumps({"id": rid, **seen}, ensure_ascii=False) + "\n")
    print(f"{len(requests)} requests written to {args.out}")
    return reports


def replay(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return evaluate(args.files, args, replaying(load_rulings(args.rulings)))


def summary(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Paraphrases served and near-misses served a wrong answer, per file and pooled, with the judge's part."""
    from aicache.stats import upper_bound

    rows = {}
    for name, report in reports.items():
        overall = report["overall"]
        rows[name] = {
            "paraphrases": [overall["paraphrases_served"]["count"], overall["paraphrases_served"]["total"]],
            "wrong": [overall["negatives_wrong"]["count"], overall["negatives_wrong"]["total"]],
            "paraphrases_judged": overall["paraphrases_judged"]["count"],
            "negatives_judged": overall["negatives_judged"]["count"],
            "unanswered": report["judge"]["unanswered"],
        }
    pooled = {key: [sum(r[key][i] for r in rows.values()) for i in (0, 1)] for key in ("paraphrases", "wrong")}
    pooled |= {key: sum(r[key] for r in rows.values()) for key in ("paraphrases_judged", "negatives_judged")}
    pooled["unanswered"] = sum(r["unanswered"] for r in rows.values())
    pooled["wrong_upper95"] = upper_bound(*pooled["wrong"])
    return {"files": rows, "pooled": pooled}


def print_table(result: dict[str, Any]) -> None:
    print(f"{'file':<40} {'paraphrases served':>20} {'near-misses wrong':>18} {'judged p/n':>11} {'unanswered':>10}")
    for name, row in [*result["files"].items(), ("pooled", result["pooled"])]:
        (ps, pt), (ws, wt) = row["paraphrases"], row["wrong"]
        judged = f"{row['paraphrases_judged']}/{row['negatives_judged']}"
        print(
            f"{name:<40} {f'{ps}/{pt} = {ps / max(pt, 1):.1%}':>20} {f'{ws}/{wt}':>18} {judged:>11} "
            f"{row['unanswered']:>10}"
        )
    print(f"pooled one-sided 95% bound on wrong answers: {result['pooled']['wrong_upper95']:.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("collect", "replay"))
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument(
        "--gray-zone", type=float, default=GRAY_ZONE, help=f"judge.gray_zone for the eval (default {GRAY_ZONE})"
    )
    parser.add_argument("--floor", type=float, help="cache.threshold for the eval (default: the default floor)")
    parser.add_argument(
        "--store-all", action="store_true", help="the store-all protocol (every question stored) instead of pairwise"
    )
    parser.add_argument("--out", type=Path, help="collect: where the judge's requests go (JSON Lines)")
    parser.add_argument("--rulings", type=Path, nargs="+", help="replay: the judge's replies, one {id, reply} per line")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args()
    if (args.mode == "collect") != (args.out is not None) or (args.mode == "replay") != (args.rulings is not None):
        parser.error("collect takes --out, replay takes --rulings")
    result = summary(collect(args) if args.mode == "collect" else replay(args))
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
