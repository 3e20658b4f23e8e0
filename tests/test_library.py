"""The public library API (``aicache.ask``) and what every path shares with it: outcomes, empty questions,
episodes that reference their entry. Real SQLite files, the real CLI in subprocesses, HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aicache import memory
from aicache.errors import UsageError
from tests.conftest import AICACHE, cli_env

ON_DISK_OUTCOMES = ("exact_hit", "semantic_hit", "miss", "refresh", "bypass", "cache_miss", "error")


def run_cli(home: Path, *args: str, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*AICACHE, *args], input=stdin, capture_output=True, env=cli_env(home, **env), timeout=120)


# --- outcomes ---------------------------------------------------------------------------------------------------


def test_outcomes_are_one_enum_with_the_values_on_disk() -> None:
    import aicache

    assert tuple(o.value for o in aicache.Outcome) == ON_DISK_OUTCOMES
    assert memory.parse_outcome("semantic_hit") is aicache.Outcome.SEMANTIC_HIT
    with pytest.raises(UsageError, match="known outcomes: exact_hit, semantic_hit"):
        memory.parse_outcome("hit")


def test_log_refuses_an_unknown_outcome(aicache_home: Path) -> None:
    listed = run_cli(aicache_home, "log", "--outcome", "exact_hit", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["episodes"] == []
    wrong = run_cli(aicache_home, "log", "--outcome", "hits")
    assert wrong.returncode == 2
    assert wrong.stderr.decode().strip().splitlines() == [
        "aicache: error: unknown outcome 'hits'; known outcomes: " + ", ".join(ON_DISK_OUTCOMES)
    ]
