"""The public library API (``aicache.ask``) and what every path shares with it: outcomes, empty questions,
episodes that reference their entry. Real SQLite files, the real CLI in subprocesses, HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aicache import memory
from aicache.errors import UsageError
from tests.conftest import AICACHE, cli_env
from tests.fakellm import FakeLLM

ON_DISK_OUTCOMES = ("exact_hit", "semantic_hit", "miss", "refresh", "bypass", "cache_miss", "error")


def run_cli(home: Path, *args: str, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*AICACHE, *args], input=stdin, capture_output=True, env=cli_env(home, **env), timeout=120)


def rows(home: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(home / "data" / "aicache.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


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


# --- empty questions --------------------------------------------------------------------------------------------


def _seed_empty_entry(home: Path, base_url: str) -> None:
    """What an older aicache cached for `printf ' \\n' | aicache ask " "`: an answer to the empty question."""
    from aicache import cache, db
    from aicache.providers.base import Completion
    from aicache.request import AskRequest

    conn = db.connect()
    with db.write_transaction(conn):
        request = AskRequest(question=" ", provider="openai", model="gpt-4o-mini", base_url=base_url)
        cache.store(
            conn,
            request,
            Completion("an answer to nothing", "stop", "gpt-4o-mini"),
            cost=None,
            vector=None,
            embed_model=None,
        )
    conn.close()


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        ([" "], b" \n"),  # the review's case: a blank argument and blank piped input
        (["?"], b""),
        (["\u200b"], b""),
        (["\u200b ?!"], b"\n\n"),
        ([], "\ufeff\u200b\n".encode()),
    ],
    ids=["blank-and-blank-stdin", "question-mark", "zero-width-space", "invisible-and-punctuation", "invisible-stdin"],
)
def test_an_empty_question_is_a_usage_error_and_never_sent_or_served(
    aicache_home: Path, fake_llm: FakeLLM, args: list[str], stdin: bytes
) -> None:
    (aicache_home / "config.toml").parent.mkdir(parents=True, exist_ok=True)
    (aicache_home / "config.toml").write_text("[cache]\nsemantic = false\n")
    _seed_empty_entry(aicache_home, fake_llm.openai_url)
    result = run_cli(
        aicache_home,
        "ask",
        *args,
        stdin=stdin,
        OPENAI_BASE_URL=fake_llm.openai_url,
        OPENAI_API_KEY="sk-test-envkey-0123456789abcdef",
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == b""
    (line,) = result.stderr.decode().strip().splitlines()
    assert line.startswith("aicache: error: nothing to ask")
    assert fake_llm.requests == []
    assert rows(aicache_home, "SELECT COUNT(*) FROM entries") == [(1,)]  # only the seeded one
    assert rows(aicache_home, "SELECT COUNT(*) FROM episodes") == [(0,)]


def test_the_flow_refuses_an_empty_question_built_by_hand(aicache_home: Path) -> None:
    from aicache import config, db
    from aicache.flow import AskContext
    from aicache.flow import ask as run_flow
    from aicache.request import AskRequest

    conn = db.connect()
    ctx = AskContext(settings=config.load(), conn=conn)
    for question in ("", "  ", "?", "\u200b", "\u2060...\ufeff"):
        with pytest.raises(UsageError, match="nothing to ask"):
            run_flow(AskRequest(question=question, provider="openai", model="m"), ctx, lambda _text: None)
    assert rows(aicache_home, "SELECT COUNT(*) FROM episodes") == [(0,)]
    conn.close()
