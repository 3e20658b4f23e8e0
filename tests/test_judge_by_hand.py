"""``benchmarks/judge_by_hand.py`` measures the decision with a judge whose rulings come from a file: its first pass
records what the judge is asked, its second serves the recorded replies, both through the real ``aicache eval``
over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_judge import KEEP, KEEP_ANSWER, KEEP_REWORDED

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "judge_by_hand.py"
RULINGS = ROOT / "benchmarks" / "data" / "judge-rulings"
PAIRS = [
    {"a": KEEP, "b": KEEP_REWORDED, "same_answer": True, "topic": "undo", "answer": KEEP_ANSWER},
    {
        "a": "list files in a directory",
        "b": "delete files in a directory",
        "same_answer": False,
        "topic": "ls",
        "answer": "Run `ls`.",
    },
]


def _run(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "summary.json"
    subprocess.run([sys.executable, str(SCRIPT), *args, "--json", str(out)], check=True, capture_output=True)
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.slow  # three evals in processes of their own, each loading the embedding model
def test_recorded_rulings_decide_the_gray_zone(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
    requests = tmp_path / "requests.jsonl"

    collected = _run(tmp_path, "collect", str(pairs), "--out", str(requests))
    asked = [json.loads(line) for line in requests.read_text(encoding="utf-8").splitlines()]
    assert len(asked) == 1 and KEEP_REWORDED in asked[0]["prompt"] and KEEP_ANSWER in asked[0]["prompt"]
    assert asked[0]["system"].startswith("You check a cache of answers")
    assert collected["pooled"]["paraphrases"] == [0, 1]  # the decision alone refuses it; collect replies NO

    rulings = tmp_path / "rulings.jsonl"
    rulings.write_text(json.dumps({"id": asked[0]["id"], "reply": "YES"}) + "\n", encoding="utf-8")
    replayed = _run(tmp_path, "replay", str(pairs), "--rulings", str(rulings))
    assert replayed["pooled"]["paraphrases"] == [1, 1]
    assert replayed["pooled"]["wrong"] == [0, 1] and replayed["pooled"]["unanswered"] == 0

    rulings.write_text("", encoding="utf-8")  # no ruling recorded: neither YES nor NO, so unanswered and a NO
    unanswered = _run(tmp_path, "replay", str(pairs), "--rulings", str(rulings))
    assert unanswered["pooled"]["paraphrases"] == [0, 1] and unanswered["pooled"]["unanswered"] == 1


def _answer_of(cached: str) -> str:
    for path in sorted((ROOT / "tests" / "data").glob("heldout*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if cached in (row.get("question"), row.get("a")):
                return row["answer"]
    raise AssertionError(f"no stored question {cached!r} in tests/data")


@pytest.mark.parametrize("path", sorted(RULINGS.glob("*.jsonl")), ids=lambda p: p.name)
def test_the_recorded_rulings_are_about_the_requests_the_judge_sends_today(path: Path) -> None:
    """A changed prompt (or answer) would leave the recorded rulings unused: each request would then go
    unanswered, a NO, and bench_eval's judge row would quietly turn into the decision's."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from judge_by_hand import request_id

    from aicache.semantic import judge

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows[:: max(1, len(rows) // 20)]:
        shown = judge.prompt(row["new"], row["cached"], _answer_of(row["cached"]))
        messages = [{"role": "system", "content": judge.SYSTEM}, {"role": "user", "content": shown}]  # OpenAI's
        assert request_id({"messages": messages}) == row["id"], row
        assert row["reply"] in ("YES", "NO")
