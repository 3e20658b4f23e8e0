"""The public library API (``aicache.ask``) and what every path shares with it: outcomes, empty questions,
episodes that reference their entry. Real SQLite files, the real CLI in subprocesses, HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aicache import memory
from aicache.errors import UsageError
from tests.conftest import AICACHE, cli_env
from tests.fakellm import FakeLLM, Reply

ON_DISK_OUTCOMES = ("exact_hit", "semantic_hit", "miss", "refresh", "bypass", "cache_miss", "error")


def run_cli(home: Path, *args: str, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*AICACHE, *args], input=stdin, capture_output=True, env=cli_env(home, **env), timeout=120)


def rows(home: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(home / "data" / "aicache.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def execute(home: Path, sql: str) -> None:
    conn = sqlite3.connect(home / "data" / "aicache.db", isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(sql)
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
    assert result.outcome is aicache.Outcome.MISS and result.stored and not result.cached
    assert any("redacted 1 secret(s) from the question" in w for w in result.warnings)
    (request,) = library_env.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert SECRET.encode() not in request.raw
    assert b"[REDACTED:openai-key]" in request.raw
    assert SECRET not in result.answer
    assert SECRET.encode() not in _stored_bytes(aicache_home)


def test_identical_asks_that_all_missed_before_the_first_stored_pay_once(
    library_env: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window of `xargs -P8 aicache ask` against a fast model, made certain: all eight miss the exact tier, then
    each takes the in-flight lock only after the one before has stored its answer and let go, so none waits."""
    import contextlib
    import threading
    from collections.abc import Iterator

    import aicache
    from aicache import inflight

    real = inflight.single_flight
    all_missed = threading.Barrier(8)
    one_at_a_time = threading.Lock()

    @contextlib.contextmanager
    def after_the_others(key: str, wait: float, on_wait: Any) -> Iterator[None]:
        all_missed.wait(timeout=60)
        with one_at_a_time, real(key, wait, on_wait):
            yield

    monkeypatch.setattr(inflight, "single_flight", after_the_others)
    outcomes: list[aicache.Outcome] = []

    def ask() -> None:
        outcomes.append(aicache.ask("how do I squash the last three commits").outcome)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(library_env.requests) == 1
    assert sorted(outcomes) == [aicache.Outcome.EXACT_HIT] * 7 + [aicache.Outcome.MISS]


def test_the_library_result_and_the_json_object_mean_the_same_field_by_field(
    aicache_home: Path, library_env: FakeLLM
) -> None:
    """`cached`: served from the cache; `stored`: this ask wrote an entry. A library miss said cached=True."""
    import dataclasses

    import aicache

    env = {"OPENAI_BASE_URL": library_env.openai_url, "OPENAI_API_KEY": KEY}

    def command(*args: str) -> dict[str, Any]:
        shown = run_cli(aicache_home, "ask", "--json", *args, **env)
        assert shown.returncode == 0, shown.stderr
        payload: dict[str, Any] = json.loads(shown.stdout)
        return payload

    library, cli = {}, {}
    for mode in ("normal", "normal", "refresh"):  # a miss, an exact hit, a refresh
        result = aicache.ask("how do I rebase", mode=mode)
        library[result.outcome.value] = (result.cached, result.stored)
        payload = command("how do I cherry-pick", *(["--refresh"] if mode == "refresh" else []))
        cli[payload["outcome"]] = (payload["cached"], payload["stored"])
        assert set(payload) == {"version"} | {field.name for field in dataclasses.fields(result)}
    expected = {"miss": (False, True), "exact_hit": (True, False), "refresh": (False, True)}
    assert library == cli == expected


def test_on_note_gets_the_cache_notes_the_command_shows(aicache_home: Path, library_env: FakeLLM) -> None:
    import aicache

    notes: list[str] = []
    for mode in ("normal", "normal", "refresh", "no_cache"):
        aicache.ask("how do I rebase", mode=mode, on_note=notes.append)
    assert notes == [
        "cache: miss (stored)",
        "cache: exact hit",
        "cache: refresh (stored)",
        "cache: bypass (not stored)",
    ]
    env = {"OPENAI_BASE_URL": library_env.openai_url, "OPENAI_API_KEY": KEY}
    shown = run_cli(aicache_home, "ask", "how do I rebase", **env)
    assert shown.returncode == 0 and shown.stderr.decode().splitlines() == ["cache: exact hit"]


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


def test_the_library_and_the_command_agree_on_what_an_ask_cost(aicache_home: Path, library_env: FakeLLM) -> None:
    import aicache

    with (aicache_home / "config.toml").open("a") as config_file:
        config_file.write('[prices."priced-model"]\ninput = 1.0\noutput = 2.0\n')
    env = {"OPENAI_BASE_URL": library_env.openai_url, "OPENAI_API_KEY": KEY}

    def cli_cost(model: str) -> object:
        done = run_cli(aicache_home, "ask", "--json", "-m", model, "what does it cost", **env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["cost"]

    for model, miss_cost in (("priced-model", (12 * 1.0 + 34 * 2.0) / 1_000_000), ("unpriced-model", None)):
        miss = aicache.ask("what does it cost", model=model)
        hit = aicache.ask("what does it cost", model=model)
        assert (miss.outcome, miss.cost) == (aicache.Outcome.MISS, miss_cost)
        assert (hit.outcome, hit.cost) == (aicache.Outcome.EXACT_HIT, 0.0)  # a hit pays nothing, priced or not
        assert cli_cost(model) == hit.cost
    assert cli_cost("another-unpriced-model") is None  # a miss of a model with no price: unknown in both


def test_a_store_that_cannot_be_written_is_a_warning_and_no_episode_id(
    aicache_home: Path, library_env: FakeLLM
) -> None:
    import aicache
    from aicache import db

    aicache.ask("a cached question")
    conn = db.connect()
    conn.execute("PRAGMA query_only = ON")  # every write fails as on a read-only store ("readonly database")
    notes: list[str] = []
    warnings: list[str] = []
    try:
        hit, miss = (
            aicache.ask(question, conn=conn, on_note=notes.append, on_warning=warnings.append)
            for question in ("a cached question", "a new question")
        )
    finally:
        conn.close()
    assert hit.outcome is aicache.Outcome.EXACT_HIT and hit.episode_id is None
    assert miss.answer == "answer to: a new question" and miss.episode_id is None and miss.entry_id is None
    assert hit.warnings == (warnings[0],) and warnings[0].startswith("served from the cache, but the episode was not")
    assert miss.warnings == (warnings[1],) and warnings[1].startswith("the answer was not saved (not cached, no ep")
    assert "read-only" in warnings[1] and len(warnings) == 2
    assert notes == ["cache: exact hit", "cache: miss (not stored)"]  # the warnings are not notes as well
    assert rows(aicache_home, "SELECT question FROM episodes") == [("a cached question",)]


def test_an_answer_cut_short_is_a_warning(library_env: FakeLLM) -> None:
    import aicache

    library_env.enqueue(Reply.text("an answer without its end", finish_reason="length"))
    warnings: list[str] = []
    result = aicache.ask("cut me", on_warning=warnings.append)
    assert result.answer == "an answer without its end" and not result.cached
    assert result.warnings == tuple(warnings) == ("the answer was cut short (finish reason length); not cached",)
    assert result.episode_id is not None


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


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"question": 123}, "question must be a str, not int"),
        ({"question": None}, "question must be a str, not NoneType"),
        ({"question": b"a question"}, "question must be a str, not bytes"),
        ({"question": "a question", "input_text": 5}, "input_text must be a str or bytes, not int"),
        ({"question": "a question", "attachments": 5}, "attachments must be a path or a list of paths, not int"),
        ({"question": "a question", "attachments": b"a.txt"}, "attachments must be a path or a list of paths, not"),
        ({"question": "a question", "attachments": ["a.txt", 7]}, "not a list holding 7"),
        ({"question": "a question", "params": {"temperature": float("nan")}}, "temperature must be a finite number"),
        ({"question": "a question", "params": {"max_tokens": 0}}, "max_tokens must be a whole number of at least 1"),
        ({"question": "a question", "model": 123}, "model must be a str or None, not int"),
        ({"question": "a question", "provider": 1}, "provider must be a str or None, not int"),
        ({"question": "a question", "base_url": 1}, "base_url must be a str or None, not int"),
        ({"question": "a question", "system": 123}, "system must be a str or None, not int"),
        ({"question": "a question", "template": ["t"]}, "template must be a str or None, not list"),
        ({"question": "a question", "key": b"sk-x"}, "key must be a str or None, not bytes"),
        (
            {"question": "a question", "params": "temperature=0"},
            "params must be a mapping of names to numbers, such as {'temperature': 0}, not str",
        ),
        ({"question": "a question", "params": 0}, "params must be a mapping of names to numbers"),
        ({"question": "a question", "params": [("temperature",)]}, "(or a list of (name, number) pairs)"),
        ({"question": "a question", "params": {0: 1}}, "params must be a mapping of names to numbers, such as"),
        ({"question": "a question", "params": {"temperature": "0"}}, "temperature must be a number, not '0'"),
        ({"question": "a question", "stream": "no"}, "stream must be True, False or None, not str"),
        ({"question": "a question", "stream": 0}, "stream must be True, False or None, not int"),
    ],
)
def test_a_value_of_the_wrong_type_is_named(library_env: FakeLLM, call: dict[str, Any], message: str) -> None:
    import aicache

    with pytest.raises(UsageError, match=re.escape(message)) as refused:
        aicache.ask(**call)
    assert refused.value.exit_code == aicache.ExitCode.USAGE
    assert library_env.requests == []


def test_one_attachment_may_be_given_as_a_single_path(aicache_home: Path, library_env: FakeLLM, tmp_path: Path) -> None:
    import aicache

    attached = tmp_path / "att.txt"
    attached.write_text("ATTACHED-CONTENT\n")
    for one in (str(attached), attached):
        aicache.ask("what does this file say?", attachments=one, mode="no_cache")
    assert len(library_env.requests) == 2
    assert all(b"ATTACHED-CONTENT" in request.raw for request in library_env.requests)


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


# --- episodes of hits reference their answer ----------------------------------------------------------------------


def _used_bytes(home: Path) -> int:
    """Bytes of pages in use, as the store's connections see it (the WAL included)."""
    conn = sqlite3.connect(home / "data" / "aicache.db")
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int(pages * conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def _big_answer(size: int) -> str:
    words = [f"w{i:x}q" for i in range(size // 8)]  # distinct words: the full-text index grows with every copy
    return " ".join(words)[:size]


def test_hits_do_not_copy_a_large_answer(aicache_home: Path, library_env: FakeLLM) -> None:
    import aicache
    from tests.fakellm import Reply

    answer = _big_answer(1_000_000)
    library_env.enqueue(Reply.text(answer))
    first = aicache.ask("print the big table", stream=False)
    assert first.outcome is aicache.Outcome.MISS and first.answer == answer
    before = _used_bytes(aicache_home)
    hits = [aicache.ask("print the big table", stream=False) for _ in range(3)]
    assert all(h.outcome is aicache.Outcome.EXACT_HIT and h.answer == answer for h in hits)
    grown = _used_bytes(aicache_home) - before
    assert grown < len(answer) // 10, f"3 hits grew the store by {grown} bytes"
    assert rows(aicache_home, "SELECT answer IS NULL, answer_from FROM episodes WHERE id > 1") == [(1, 1)] * 3


def test_a_hit_still_shows_its_answer_everywhere(aicache_home: Path, library_env: FakeLLM) -> None:
    import aicache
    from tests.fakellm import Reply

    library_env.enqueue(Reply.text("use git stash pop to restore"), Reply.text("use git stash apply instead"))
    aicache.ask("bring my stash back")
    hit = aicache.ask("bring my stash back")
    refreshed = aicache.ask("bring my stash back", mode="refresh")
    later = aicache.ask("bring my stash back")
    assert (hit.outcome, refreshed.outcome, later.outcome) == ("exact_hit", "refresh", "exact_hit")
    assert later.answer == "use git stash apply instead"

    # the entry is deleted later: each hit keeps the answer it was served
    execute(aicache_home, "DELETE FROM entries")
    logged = json.loads(run_cli(aicache_home, "log", "--json").stdout)["episodes"]
    assert [(e["outcome"], e["answer"]) for e in logged] == [
        ("exact_hit", "use git stash apply instead"),
        ("refresh", "use git stash apply instead"),
        ("exact_hit", "use git stash pop to restore"),
        ("miss", "use git stash pop to restore"),
    ]
    found = json.loads(run_cli(aicache_home, "log", "-q", "pop", "--json").stdout)["episodes"]
    assert [e["id"] for e in found] == [hit.episode_id, 1]  # full-text search finds the hit by its answer
    why = json.loads(run_cli(aicache_home, "why", str(hit.episode_id), "--json").stdout)
    assert why["episode"]["answer"] == "use git stash pop to restore"
    table = run_cli(aicache_home, "log", COLUMNS="200").stdout.decode()
    assert table.count("pop to restore") == 2 and table.count("apply instead") == 2, table

    # the episode it came from is deleted: the reference is cleared, nothing dangles
    execute(aicache_home, "DELETE FROM episodes WHERE id = 1")
    assert memory.get(_connect(aicache_home), hit.episode_id)["answer"] is None  # type: ignore[index]


def _connect(home: Path) -> sqlite3.Connection:
    from aicache import db

    return db.connect(home / "data" / "aicache.db")


def test_migration_4_converts_copied_hits(tmp_path: Path) -> None:
    import sqlite_utils

    from aicache import migrations

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    old = sqlite_utils.Database(conn)
    for number, migration in enumerate(migrations.MIGRATIONS[:3], start=1):
        migration(old)
        conn.execute(f"PRAGMA user_version = {number}")
    insert = "INSERT INTO episodes (id, question, outcome, entry_id, answer) VALUES (?, 'q', ?, ?, ?)"
    for values in [
        (1, "miss", 7, "first answer"),
        (2, "exact_hit", 7, "first answer"),
        (3, "refresh", 7, "second answer"),
        (4, "semantic_hit", 7, "second answer"),
        (5, "exact_hit", 8, "an answer whose episode is gone"),
        (6, "error", None, "partial"),
    ]:
        conn.execute(insert, values)
    migrations.ensure_current(conn)
    got = conn.execute("SELECT id, answer, answer_from FROM episodes ORDER BY id").fetchall()
    assert got == [
        (1, "first answer", None),
        (2, None, 1),
        (3, "second answer", None),
        (4, None, 3),
        (5, "an answer whose episode is gone", None),
        (6, "partial", None),
    ]
    conn.row_factory = sqlite3.Row
    assert memory.get(conn, 4)["answer"] == "second answer"  # type: ignore[index]
    assert [e["id"] for e in memory.search(conn, "first")] == [2, 1]
    conn.close()


def test_migration_7_moves_the_commit_hooks_record_out_of_feedback(tmp_path: Path) -> None:
    import sqlite_utils

    from aicache import migrations

    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    old = sqlite_utils.Database(conn)
    for number, migration in enumerate(migrations.MIGRATIONS[:6], start=1):
        migration(old)
        conn.execute(f"PRAGMA user_version = {number}")
    kept = '{"kept_similarity": 1.0, "commit": "2456d2"}'
    insert = "INSERT INTO episodes (id, question, outcome, feedback) VALUES (?, 'q', 'miss', ?)"
    for values in [(1, kept), (2, "bad"), (3, None), (4, kept)]:
        conn.execute(insert, values)
    # Episode 4 was labelled good before the hook's record replaced the word: the label gives it back.
    conn.execute(
        "INSERT INTO labels (episode_id, exact_key, entry_id, good, source, ts) VALUES (4, 'k', 1, 1, 'feedback', 0)"
    )
    migrations.ensure_current(conn)
    got = conn.execute("SELECT id, feedback, hook_feedback FROM episodes ORDER BY id").fetchall()
    assert got == [(1, None, kept), (2, "bad", None), (3, None, None), (4, "good", kept)]
    conn.row_factory = sqlite3.Row
    assert memory.get(conn, 4)["hook_feedback"] == {"kept_similarity": 1.0, "commit": "2456d2"}  # type: ignore[index]
    conn.close()


def test_migration_9_rekeys_questions_with_courtesy_and_their_labels(tmp_path: Path) -> None:
    import sqlite_utils

    from aicache import cache, migrations
    from aicache.cachekeys import versioned_hash
    from aicache.request import exact_key

    def old_key(question: str) -> str:  # the recipe before courtesy was normalised away: case, spaces, punctuation
        return versioned_hash({"partition": "p", "question": question.casefold().rstrip("?!.,")})

    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    conn.row_factory = sqlite3.Row
    old = sqlite_utils.Database(conn)
    for number, migration in enumerate(migrations.MIGRATIONS[:8], start=1):
        migration(old)
        conn.execute(f"PRAGMA user_version = {number}")
    questions = {
        1: "how do I undo the last commit please",  # labelled wrong for itself: must stay refused
        2: "what is a monad",
        3: "what is a monad, thanks!",  # its new key is entry 2's: it keeps its own
        4: "hey, how do I list open files",
    }
    for entry_id, question in questions.items():
        conn.execute(
            "INSERT INTO entries (id, exact_key, partition_key, question, answer, created_at)"
            " VALUES (?, ?, 'p', ?, ?, 1)",
            (entry_id, old_key(question), question, f"answer {entry_id}"),
        )
    conn.execute(
        "INSERT INTO episodes (id, partition_key, question, outcome, entry_id) VALUES (1, 'p', ?, 'miss', 1)",
        (questions[1],),
    )
    conn.execute(
        "INSERT INTO labels (episode_id, exact_key, entry_id, entry_created, good, source, ts)"
        " VALUES (1, ?, 1, 1, 0, 'feedback', 0)",
        (old_key(questions[1]),),
    )
    migrations.ensure_current(conn)
    keys = dict(conn.execute("SELECT id, exact_key FROM entries").fetchall())
    assert keys[1] == exact_key("p", "how do I undo the last commit") and keys[3] == old_key(questions[3])
    assert keys[2] == exact_key("p", "what is a monad") == exact_key("p", questions[3])
    assert conn.execute("SELECT exact_key FROM labels").fetchone()[0] == keys[1]
    assert cache.lookup_exact(conn, exact_key("p", "How do I undo the last commit?")) is None  # still refused
    listed = cache.lookup_exact(conn, exact_key("p", "how do I list open files? thanks"))
    assert listed is not None and listed.id == 4
    conn.close()
