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


# --- aicache.ask ------------------------------------------------------------------------------------------------

KEY = "sk-test-envkey-0123456789abcdef"
SECRET = "sk-proj-LIBRARYSECRET0123456789abcdefXYZ"


def _docstring_example() -> str:
    import aicache

    doc = aicache.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 2)
    lines = "\n\n".join(block[:2]).splitlines()
    return "\n".join(line[4:] for line in lines)


def _stored_bytes(home: Path) -> bytes:
    """Every file of the store: the database, its WAL and shared memory, the index."""
    return b"".join(p.read_bytes() for p in (home / "data").rglob("*") if p.is_file())


@pytest.fixture
def library_env(aicache_home: Path, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> FakeLLM:
    aicache_home.mkdir(parents=True, exist_ok=True)
    (aicache_home / "config.toml").write_text("[cache]\nsemantic = false\n")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.openai_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return fake_llm


def test_the_package_docstring_example_runs(library_env: FakeLLM, capsys: pytest.CaptureFixture[str]) -> None:
    example = _docstring_example()
    assert "aicache.ask(" in example
    exec(compile(example, "aicache.__doc__", "exec"), {})
    exec(compile(example, "aicache.__doc__", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    question = "how do I undo the last commit but keep the changes?"
    assert printed == [f"answer to: {question}", "miss", f"answer to: {question}", "exact_hit"]
    (request,) = library_env.requests  # the second run was a hit
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_a_secret_in_the_question_never_leaves_the_library_call(aicache_home: Path, library_env: FakeLLM) -> None:
    import aicache

    example = _docstring_example().replace(
        "how do I undo the last commit but keep the changes?", f"why is my key {SECRET} refused?"
    )
    assert SECRET in example
    scope: dict[str, Any] = {}
    exec(compile(example, "aicache.__doc__", "exec"), scope)
    result = scope["result"]
    assert result.outcome is aicache.Outcome.MISS and result.cached
    assert any("redacted 1 secret(s) from the question" in w for w in result.warnings)
    (request,) = library_env.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert SECRET.encode() not in request.raw
    assert b"[REDACTED:openai-key]" in request.raw
    assert SECRET not in result.answer
    assert SECRET.encode() not in _stored_bytes(aicache_home)


def test_the_library_and_the_command_share_one_cache(aicache_home: Path, library_env: FakeLLM) -> None:
    import aicache

    seen: list[str] = []
    first = aicache.ask(
        "list the files in the last commit",
        system="answer with one command",
        params={"temperature": 0},
        input_text="context from a pipe\n",
        on_text=seen.append,
    )
    assert first.outcome is aicache.Outcome.MISS and "".join(seen) == first.answer
    cli = run_cli(
        aicache_home,
        "ask",
        "list the files in the last commit",
        "-s",
        "answer with one command",
        "-o",
        "temperature=0",
        stdin=b"context from a pipe\n",
        OPENAI_BASE_URL=library_env.openai_url,
        OPENAI_API_KEY=KEY,
    )
    assert cli.returncode == 0, cli.stderr
    assert b"cache: exact hit" in cli.stderr and cli.stdout.decode() == first.answer + "\n"
    sources = rows(aicache_home, "SELECT source, outcome FROM episodes ORDER BY id")
    assert sources == [("library", "miss"), ("cli", "exact_hit")]


def test_library_errors_carry_the_command_line_exit_codes(library_env: FakeLLM) -> None:
    import aicache
    from aicache.errors import CacheMissError, ConfigError

    with pytest.raises(UsageError, match="nothing to ask"):
        aicache.ask("   ")
    with pytest.raises(UsageError, match="unknown cache mode 'sometimes'"):
        aicache.ask("a question", mode="sometimes")
    with pytest.raises(CacheMissError) as missed:
        aicache.ask("never asked before", mode="cache_only")
    assert missed.value.exit_code == aicache.ExitCode.CACHE_MISS
    with pytest.raises(ConfigError):
        aicache.ask("a question", provider="openia")
    assert library_env.requests == []


# --- withheld keys ----------------------------------------------------------------------------------------------


def test_a_withheld_key_is_named_and_the_environment_pair_is_sent(aicache_home: Path, fake_llm: FakeLLM) -> None:
    from aicache import credentials

    aicache_home.mkdir(parents=True, exist_ok=True)
    (aicache_home / "config.toml").write_text("[cache]\nsemantic = false\n")
    flag = run_cli(aicache_home, "ask", "first question", "--base-url", fake_llm.openai_url, OPENAI_API_KEY=KEY)
    assert flag.returncode == 0, flag.stderr
    warning, outcome = flag.stderr.decode().strip().splitlines()
    assert warning.startswith(f"aicache: warning: no key sent to {fake_llm.openai_url}: OPENAI_API_KEY is meant")
    assert "providers.openai.send_key_to_custom_base_url = true" in warning and KEY not in warning
    assert outcome == "cache: miss (stored)"
    assert "authorization" not in fake_llm.requests[-1].headers

    credentials.set_key("openai", "sk-file-key-0123456789abcdef")
    paired = run_cli(aicache_home, "ask", "second question", OPENAI_API_KEY=KEY, OPENAI_BASE_URL=fake_llm.openai_url)
    assert paired.returncode == 0, paired.stderr
    assert paired.stderr.decode().strip().splitlines() == ["cache: miss (stored)"]
    assert fake_llm.requests[-1].headers["authorization"] == f"Bearer {KEY}"
