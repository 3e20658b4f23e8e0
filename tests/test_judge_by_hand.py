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

pytestmark = pytest.mark.slow  # two evals in processes of their own, each loading the embedding model

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "judge_by_hand.py"
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
