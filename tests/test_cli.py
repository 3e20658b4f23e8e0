"""End-to-end tests of ``aicache ask`` and friends: real processes, real SQLite, real HTTP on 127.0.0.1.

Each test runs the CLI as a subprocess against the fake provider in tests/fakellm.py, then checks stdout (the
answer only), stderr (notes and one-line errors), the exit code, what the server received and what the store
holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AICACHE, ROOT, cli_env
from tests.fakellm import FakeLLM, Reply

HEAVY = ("torch", "sentence_transformers", "transformers", "hnswlib", "onnxruntime", "numpy", "httpx", "matplotlib")


def run(
    home: Path,
    server: FakeLLM | None,
    *args: str,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    extra = {"OPENAI_API_KEY": "sk-test-envkey-0123456789abcdef"}
    if server is not None:
        extra["OPENAI_BASE_URL"] = server.openai_url
    extra.update(env or {})
    return subprocess.run(
        [*AICACHE, *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=cli_env(home, **extra),
        timeout=120,
    )


def ask(home: Path, server: FakeLLM | None, *args: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return run(home, server, "ask", *args, **kw)


@pytest.fixture(autouse=True)
def exact_tier_only(aicache_home: Path) -> None:
    # Semantic tier off here: these tests are about the exact tier and the CLI; test_semantic covers the rest.
    aicache_home.mkdir(parents=True, exist_ok=True)
    (aicache_home / "config.toml").write_text(
        "[cache]\nsemantic = false\n[http]\nretries = 2\nbackoff = 0.05\nread_timeout = 3\nconnect_timeout = 1\n"
    )


def rows(home: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(home / "data" / "aicache.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_miss_then_exact_hit(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("git reset --soft HEAD~1"))
    first = ask(aicache_home, fake_llm, "how do I undo the last commit but keep the changes")
    assert first.returncode == 0, first.stderr
    assert first.stdout == b"git reset --soft HEAD~1\n"
    assert b"cache: miss" in first.stderr
    second = ask(aicache_home, fake_llm, "How do I undo the last commit but keep the changes?")
    assert second.returncode == 0
    assert second.stdout == first.stdout
    assert b"cache: exact hit" in second.stderr
    assert len(fake_llm.requests) == 1
    outcomes = [r[0] for r in rows(aicache_home, "SELECT outcome FROM episodes ORDER BY id")]
    assert outcomes == ["miss", "exact_hit"]


@pytest.mark.parametrize(
    ("variants", "refreshed"),
    [
        (
            ("how do I list open files\u200b", "how do I\u200b list open files", "\ufeffhow do I list open files"),
            "how do I list open fi\u00adles",
        ),
        (
            ("hey, how do I list open files? thanks!", "Quick question: how do I list open files please"),
            "how do I list open files, thank you very much",
        ),
    ],
    ids=["invisible characters", "courtesy"],
)
def test_near_verbatim_repeats_are_an_exact_hit_and_sent_as_typed(
    aicache_home: Path, fake_llm: FakeLLM, variants: tuple[str, ...], refreshed: str
) -> None:
    assert ask(aicache_home, fake_llm, "how do I list open files").returncode == 0
    for variant in variants:
        again = ask(aicache_home, fake_llm, variant)
        assert b"cache: exact hit" in again.stderr, again.stderr
    assert len(fake_llm.requests) == 1
    fresh = ask(aicache_home, fake_llm, refreshed, "--refresh")
    assert fresh.returncode == 0, fresh.stderr
    assert fake_llm.requests[-1].body["messages"][-1]["content"] == refreshed


def test_pipe_gets_only_the_answer_and_stdin_is_part_of_the_partition(aicache_home: Path, fake_llm: FakeLLM) -> None:
    one = ask(aicache_home, fake_llm, "write a commit message", stdin=b"diff --git a/x b/x\n+hello\n")
    assert one.returncode == 0
    body = fake_llm.requests[-1].body
    # the piped text's own final newline adds no second blank line before the question
    assert body["messages"][-1]["content"] == "diff --git a/x b/x\n+hello\n\nwrite a commit message"
    assert one.stdout.decode().startswith("answer to:")
    again = ask(aicache_home, fake_llm, "write a commit message", stdin=b"diff --git a/x b/x\n+hello\n")
    assert b"exact hit" in again.stderr
    other = ask(aicache_home, fake_llm, "write a commit message", stdin=b"diff --git a/y b/y\n+bye\n")
    assert b"cache: miss" in other.stderr and len(fake_llm.requests) == 2


def test_equal_sampling_numbers_are_one_entry_and_sent_as_given(aicache_home: Path, fake_llm: FakeLLM) -> None:
    first = ask(aicache_home, fake_llm, "what is a monad", "-o", "temperature=0")
    assert first.returncode == 0, first.stderr
    assert repr(fake_llm.requests[-1].body["temperature"]) == "0"  # the int typed, not 0.0
    for same in (["--temperature", "0"], ["-o", "temperature=0.0"], ["-o", "temperature=-0"]):
        again = ask(aicache_home, fake_llm, "what is a monad", *same)
        assert b"cache: exact hit" in again.stderr, (same, again.stderr)
    assert len(fake_llm.requests) == 1
    fresh = ask(aicache_home, fake_llm, "what is a monad", "--temperature", "0", "--refresh")
    assert fresh.returncode == 0, fresh.stderr
    assert repr(fake_llm.requests[-1].body["temperature"]) == "0.0"


@pytest.mark.parametrize(
    "variant",
    [
        ["-m", "gpt-4o"],
        ["-s", "be terse"],
        ["--temperature", "0.3"],
        ["-o", "top_p=0.5"],
        ["-t", "commit-message"],
    ],
)
def test_same_question_other_request_is_never_a_hit(aicache_home: Path, fake_llm: FakeLLM, variant: list[str]) -> None:
    assert ask(aicache_home, fake_llm, "explain rebase").returncode == 0
    changed = ask(aicache_home, fake_llm, "explain rebase", *variant)
    assert changed.returncode == 0, changed.stderr
    assert b"cache: miss" in changed.stderr
    assert len(fake_llm.requests) == 2


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["-o", "temperature=nan"], "-o/--option: temperature must be a finite number, not nan"),
        (["-o", "top_p=inf"], "-o/--option: top_p must be a finite number, not inf"),
        (["--temperature", "-inf"], "--temperature: temperature must be a finite number, not -inf"),
        (["--max-tokens", "0"], "--max-tokens: max_tokens must be a whole number of at least 1, not 0"),
        (["--max-tokens", "-5"], "--max-tokens: max_tokens must be a whole number of at least 1, not -5"),
        (["-o", "max_tokens=2.5"], "-o/--option: max_tokens must be a whole number of at least 1, not 2.5"),
    ],
)
def test_a_sampling_parameter_no_provider_accepts_is_refused_before_sending(
    aicache_home: Path, fake_llm: FakeLLM, option: list[str], message: str
) -> None:
    refused = ask(aicache_home, fake_llm, *option, "explain rebase")
    assert refused.returncode == 2
    assert message in refused.stderr.decode() and refused.stderr.count(b"\n") == 1
    assert fake_llm.requests == []
    sent = ask(aicache_home, fake_llm, "--max-tokens", "1", "-o", "temperature=-0.5", "-o", "top_p=1e-3", "hi")
    assert sent.returncode == 0, sent.stderr
    body = fake_llm.requests[-1].body
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (1, -0.5, 0.001)


def test_template_placeholders_typed_by_the_user_are_sent_as_typed(aicache_home: Path, fake_llm: FakeLLM) -> None:
    piped = ask(aicache_home, fake_llm, "-t", "commit-message", "x {input} y", stdin=b"diff\n")
    assert piped.returncode == 0, piped.stderr
    assert fake_llm.requests[-1].body["messages"][-1] == {"role": "user", "content": "x {input} y\n\ndiff"}
    alone = ask(aicache_home, fake_llm, "-t", "commit-message", "what does {input} mean", "--no-stdin")
    assert alone.returncode == 0, alone.stderr
    assert fake_llm.requests[-1].body["messages"][-1] == {"role": "user", "content": "what does {input} mean"}
    braces = ask(aicache_home, fake_llm, "-t", "commit-message", "{question} {x}", stdin=b"a {question} b\n")
    assert braces.returncode == 0, braces.stderr
    assert fake_llm.requests[-1].body["messages"][-1] == {"role": "user", "content": "{question} {x}\n\na {question} b"}


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        (
            "latin1",
            b'system = "caf\xe9"\nprompt = "{question}"\n',
            b"is not UTF-8 text (invalid continuation byte at byte 13)",
        ),
        ("dir", None, b": Is a directory"),
        ("numbers", b'system = 5\nprompt = "{question}"\n', b": system must be a string, not int"),
        ("broken", b"prompt = \n", b"is not valid TOML"),
    ],
)
def test_a_bad_user_template_is_a_configuration_error_and_nothing_is_sent(
    aicache_home: Path, fake_llm: FakeLLM, name: str, content: bytes | None, problem: bytes
) -> None:
    path = aicache_home / "templates" / f"{name}.toml"
    path.parent.mkdir()
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    result = ask(aicache_home, fake_llm, "-t", name, "explain rebase")
    assert result.returncode == 5
    assert result.stderr.startswith(b"aicache: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert str(path).encode() in result.stderr and problem in result.stderr
    assert fake_llm.requests == []


@pytest.mark.parametrize("name", ["../config", "ABSOLUTE", "sub/name", ".hidden", "..\\config"])
def test_a_template_name_that_is_a_path_is_refused(aicache_home: Path, fake_llm: FakeLLM, name: str) -> None:
    # Each names a file that is a valid template (config.toml is one: no prompt, no system), so only the name's
    # rule can refuse it.
    template = b'system = "from a path"\nprompt = "{question}"\n'
    (aicache_home / "templates" / "sub").mkdir(parents=True)
    for path in ("sub/name.toml", ".hidden.toml", "..\\config.toml"):
        (aicache_home / "templates" / path).write_bytes(template)
    if name == "ABSOLUTE":
        name = str(aicache_home / "config")
    result = ask(aicache_home, fake_llm, "-t", name, "what is a monad")
    assert result.returncode == 5, result.stderr
    (line,) = result.stderr.decode().strip().splitlines()
    assert line == (
        f"aicache: error: template name {name!r} must be a plain name (no path separator, not starting with a dot): "
        "a template is <config dir>/templates/NAME.toml or a built-in one"
    )
    assert fake_llm.requests == []


def test_other_base_url_is_never_a_hit(aicache_home: Path, fake_llm: FakeLLM) -> None:
    other = FakeLLM()
    other.start()
    try:
        assert ask(aicache_home, fake_llm, "explain rebase").returncode == 0
        moved = ask(aicache_home, fake_llm, "explain rebase", "--base-url", other.openai_url, "--key", "sk-x")
        assert b"cache: miss" in moved.stderr and len(other.requests) == 1
    finally:
        other.stop()


def test_json_output(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("use git stash", usage=(11, 22)))
    result = ask(aicache_home, fake_llm, "save my work for later", "--json")
    payload = json.loads(result.stdout)
    assert payload["version"] == 2 and payload["answer"] == "use git stash"
    assert payload["outcome"] == "miss" and payload["tokens_in"] == 11 and payload["tokens_out"] == 22
    assert isinstance(payload["episode_id"], int)
    # `cached`: served from the cache; `stored`: this ask wrote an entry; `cost`: what this ask paid.
    assert (payload["cached"], payload["stored"]) == (False, True)
    hit = json.loads(ask(aicache_home, fake_llm, "save my work for later", "--json").stdout)
    assert (hit["outcome"], hit["cached"], hit["stored"], hit["cost"]) == ("exact_hit", True, False, 0.0)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_without_key_a_miss_is_refused_before_sending_and_a_hit_still_served(aicache_home: Path, provider: str) -> None:
    from aicache import cache, config, db
    from aicache.prepare import RawAsk, prepare
    from aicache.providers.base import Completion

    # An answer cached from the provider's own service, where the key was set then.
    stored = prepare(RawAsk("explain rebase", provider=provider), config.load()).request
    conn = db.connect()
    with db.write_transaction(conn):
        cache.store(
            conn,
            stored,
            Completion("rebase replays commits", "stop", stored.model),
            cost=None,
            vector=None,
            embed_model=None,
        )
    conn.close()
    no_key = {"OPENAI_API_KEY": ""}  # an empty variable is no key
    hit = ask(aicache_home, None, "-p", provider, "explain rebase", env=no_key)
    assert (hit.returncode, hit.stdout) == (0, b"rebase replays commits\n"), hit.stderr
    refused = ask(aicache_home, None, "-p", provider, "explain merge", env=no_key)
    lines = refused.stderr.decode().splitlines()
    assert (refused.returncode, refused.stdout, len(lines)) == (5, b"", 1), refused.stderr
    assert lines[0].startswith(f"aicache: error: no API key for {provider}, so nothing was sent to https://api.")
    assert f"aicache keys set {provider}" in lines[0] and f"{provider.upper()}_API_KEY" in lines[0]


def test_usage_errors_are_one_line_in_clicks_words_exit_2(aicache_home: Path) -> None:
    for args, words in (
        (["ask", "--bogus"], "No such option: --bogus"),
        (["log", "-n", "x"], "Invalid value for '-n' / '--limit': 'x' is not a valid"),
        (["nope"], "No such command 'nope'."),
    ):
        proc = run(aicache_home, None, *args)
        lines = proc.stderr.decode().splitlines()
        assert proc.returncode == 2 and proc.stdout == b"", (args, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("aicache: error: ") and words in lines[0], lines


def test_with_json_every_failure_is_a_json_object(aicache_home: Path, fake_llm: FakeLLM) -> None:
    miss = ask(aicache_home, fake_llm, "--cache-only", "--json", "never asked")
    assert miss.returncode == 4
    assert json.loads(miss.stdout) == {"version": 2, "error": "not in the cache (--cache-only)", "exit_code": 4}
    fake_llm.enqueue(Reply.status(401))
    refused = ask(aicache_home, fake_llm, "--json", "who are you")
    assert refused.returncode == 3 and json.loads(refused.stdout)["exit_code"] == 3
    usage = run(aicache_home, None, "log", "--json", "-n", "x")
    assert usage.returncode == 2 and "-n" in json.loads(usage.stdout)["error"]
    # After `--`, "--json" is a word of the question, not the option.
    assert ask(aicache_home, fake_llm, "--cache-only", "--", "--json").stdout == b""


def test_quiet_hides_the_notes_but_not_the_errors(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("hi"))
    miss = ask(aicache_home, fake_llm, "--quiet", "hello")
    assert (miss.returncode, miss.stdout, miss.stderr) == (0, b"hi\n", b"")
    hit = run(aicache_home, fake_llm, "--quiet", "ask", "hello")
    assert (hit.returncode, hit.stdout, hit.stderr) == (0, b"hi\n", b"")
    assert b"cache: exact hit" in ask(aicache_home, fake_llm, "hello").stderr
    failed = ask(aicache_home, fake_llm, "--quiet", "--cache-only", "other")
    assert failed.returncode == 4 and failed.stderr == b"aicache: error: not in the cache (--cache-only)\n"


def test_no_cache_refresh_and_cache_only(aicache_home: Path, fake_llm: FakeLLM) -> None:
    assert ask(aicache_home, fake_llm, "q1", "--cache-only").returncode == 4
    assert fake_llm.requests == []
    fake_llm.enqueue(Reply.text("old"), Reply.text("bypassed"), Reply.text("new"))
    assert ask(aicache_home, fake_llm, "q1").stdout == b"old\n"
    bypass = ask(aicache_home, fake_llm, "q1", "--no-cache")
    assert bypass.stdout == b"bypassed\n" and len(fake_llm.requests) == 2
    assert ask(aicache_home, fake_llm, "q1").stdout == b"old\n"  # --no-cache wrote nothing
    refreshed = ask(aicache_home, fake_llm, "q1", "--refresh")
    assert refreshed.stdout == b"new\n"
    assert ask(aicache_home, fake_llm, "q1", "--cache-only").stdout == b"new\n"
    feedback = rows(aicache_home, "SELECT feedback FROM episodes WHERE outcome = 'exact_hit' ORDER BY id LIMIT 1")
    assert feedback == [("bad",)]
    assert rows(aicache_home, "SELECT source, good FROM labels") == [("refresh", 0)]
    assert rows(aicache_home, "SELECT COUNT(*) FROM entries") == [(1,)]


def test_hit_is_streamed_like_a_miss(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("line one\nline two\n", chunks=["line ", "one\n", "line two\n"]))
    miss = ask(aicache_home, fake_llm, "two lines")
    hit = ask(aicache_home, fake_llm, "two lines")
    hit_plain = ask(aicache_home, fake_llm, "two lines", "--no-stream")
    assert miss.stdout == hit.stdout == hit_plain.stdout == b"line one\nline two\n"


def test_server_errors_are_retried_and_cached_once(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.status(500), Reply.status(503), Reply.text("finally"))
    result = ask(aicache_home, fake_llm, "flaky")
    assert result.returncode == 0 and result.stdout == b"finally\n"
    assert len(fake_llm.requests) == 3
    assert rows(aicache_home, "SELECT COUNT(*) FROM entries") == [(1,)]


def test_long_retry_after_is_a_clear_error(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.status(429, "slow down", headers={"Retry-After": "3600"}))
    result = ask(aicache_home, fake_llm, "rate limited")
    assert result.returncode == 3
    assert b"3600" in result.stderr and b"Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert rows(aicache_home, "SELECT COUNT(*) FROM entries") == [(0,)]


def test_unauthorized_is_not_retried_and_the_key_never_leaks(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.status(401, "Incorrect API key provided: sk-test-envkey-0123456789abcdef"))
    result = ask(aicache_home, fake_llm, "who am i")
    assert result.returncode == 3 and len(fake_llm.requests) == 1
    assert b"401" in result.stderr
    assert b"sk-test-envkey" not in result.stderr + result.stdout
    db_bytes = b"".join(p.read_bytes() for p in (aicache_home / "data").iterdir() if p.is_file())
    assert b"sk-test-envkey" not in db_bytes
    assert rows(aicache_home, "SELECT outcome FROM episodes") == [("error",)]


def test_dropped_stream_shows_partial_text_then_an_error_and_caches_nothing(
    aicache_home: Path, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(Reply.drop_after(2, "part one, part two, part three"))
    result = ask(aicache_home, fake_llm, "long answer")
    assert result.returncode == 3
    assert result.stdout.strip() and b"part" in result.stdout
    assert b"error" in result.stderr
    assert rows(aicache_home, "SELECT COUNT(*) FROM entries") == [(0,)]
    ((outcome, error, answer),) = rows(aicache_home, "SELECT outcome, error, answer FROM episodes")
    assert outcome == "error" and error and answer
    assert ask(aicache_home, fake_llm, "long answer").returncode == 0
    assert len(fake_llm.requests) == 2  # not served from the cache


def test_a_failed_ask_records_when_its_first_text_came_and_only_then(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.drop_after(2, "part one, part two, part three"), Reply.status(400, "bad request"))
    assert ask(aicache_home, fake_llm, "long answer").returncode == 3
    assert ask(aicache_home, fake_llm, "refused question").returncode == 3
    dropped, refused = (json.loads(run(aicache_home, None, "show", "--json", n).stdout)["episode"] for n in "12")
    assert dropped["outcome"] == refused["outcome"] == "error"
    assert isinstance(dropped["ttfb_ms"], float) and 0 < dropped["ttfb_ms"] <= dropped["latency_ms"]
    assert refused["ttfb_ms"] is None  # no text ever came
    assert b"first text after" in run(aicache_home, None, "show", "1").stdout
    assert b"first text after" not in run(aicache_home, None, "show", "2").stdout


def test_no_stream_answer_cut_short_is_retried_and_cached_whole(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.drop_after(1, "the first half of"), Reply.text("the whole answer"))
    first = ask(aicache_home, fake_llm, "--no-stream", "long answer")
    assert (first.returncode, first.stdout) == (0, b"the whole answer\n"), first.stderr
    assert len(fake_llm.requests) == 2
    assert rows(aicache_home, "SELECT answer FROM entries") == [("the whole answer",)]


def test_no_stream_answers_cut_short_until_retries_run_out(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(*[Reply.drop_after(1, "never whole", content_length=False)] * 3)
    failed = ask(aicache_home, fake_llm, "--no-stream", "long answer")
    lines = failed.stderr.decode().splitlines()
    assert (failed.returncode, failed.stdout) == (3, b"")
    assert len(lines) == 1 and lines[0].startswith("aicache: error: response from ")
    assert lines[0].endswith("(gave up after 3 attempts)") and len(fake_llm.requests) == 3  # retries = 2
    assert rows(aicache_home, "SELECT COUNT(*) FROM entries") == [(0,)]
    assert rows(aicache_home, "SELECT outcome, answer FROM episodes") == [("error", None)]


def test_truncated_answer_is_never_served_later(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("cut sho", finish_reason="length"))
    first = ask(aicache_home, fake_llm, "essay")
    assert first.returncode == 0 and b"not cached" in first.stderr
    second = ask(aicache_home, fake_llm, "essay")
    assert b"cache: miss" in second.stderr and len(fake_llm.requests) == 2


def test_an_answer_cut_short_is_a_warning_even_in_json(aicache_home: Path, fake_llm: FakeLLM) -> None:
    cut = "the answer was cut short (finish reason length); not cached"
    fake_llm.enqueue(Reply.text("cut sho", finish_reason="length"))
    quiet = ask(aicache_home, fake_llm, "--quiet", "essay")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, b"cut sho\n", f"aicache: warning: {cut}\n".encode())
    fake_llm.enqueue(Reply.text("cut sho", finish_reason="length"))
    shown = ask(aicache_home, fake_llm, "--json", "essay")
    fields = json.loads(shown.stdout)
    assert shown.returncode == 0 and (fields["outcome"], fields["stored"], fields["warnings"]) == ("miss", False, [cut])
    assert f"aicache: warning: {cut}" in shown.stderr.decode()


def test_an_empty_or_blank_answer_is_shown_but_never_cached(aicache_home: Path, fake_llm: FakeLLM) -> None:
    for n, text in enumerate(("", "   \n  ")):
        fake_llm.enqueue(Reply.text(text))
        first = ask(aicache_home, fake_llm, f"say nothing {n}")
        assert (first.returncode, first.stdout) == (0, text.encode() + b"\n"), first.stderr  # with its final newline
        assert first.stderr == b"the answer was empty (or only whitespace); not cached\ncache: miss (not stored)\n"
        assert ask(aicache_home, fake_llm, "--cache-only", f"say nothing {n}").returncode == 4
    fake_llm.enqueue(Reply.text(""))
    as_json = json.loads(ask(aicache_home, fake_llm, "--json", "--no-stream", "say nothing again").stdout)
    assert (as_json["answer"], as_json["stored"], as_json["entry_id"]) == ("", False, None)
    assert rows(aicache_home, "SELECT COUNT(*) FROM entries") == [(0,)]
    episodes = rows(aicache_home, "SELECT outcome, entry_id, error FROM episodes WHERE outcome = 'miss'")
    assert episodes == [("miss", None, "empty answer; not cached")] * 3


def test_a_blank_entry_from_an_older_version_is_never_served(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("an answer"))
    assert ask(aicache_home, fake_llm, "old question").returncode == 0
    with contextlib.closing(sqlite3.connect(aicache_home / "data" / "aicache.db")) as conn, conn:
        conn.execute("UPDATE entries SET answer = ' \n'")  # what an older aicache stored for a blank answer
    assert ask(aicache_home, fake_llm, "--cache-only", "old question").returncode == 4
    fake_llm.enqueue(Reply.text("a new answer"))
    again = ask(aicache_home, fake_llm, "old question")
    assert (again.stdout, again.stderr) == (b"a new answer\n", b"cache: miss (stored)\n")
    assert rows(aicache_home, "SELECT answer FROM entries") == [("a new answer",)]  # it replaced the blank one


def test_read_timeout_fires_and_nothing_is_cached(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(*[Reply.hang(10)] * 3)
    result = ask(aicache_home, fake_llm, "slow", env={})
    assert result.returncode == 3 and b"timed out" in result.stderr.lower()
    assert rows(aicache_home, "SELECT COUNT(*) FROM entries") == [(0,)]


def _default_sigint() -> None:
    # Background jobs and wrappers such as timeout(1) can hand children SIGINT ignored or blocked; Python then
    # never raises KeyboardInterrupt. A user's terminal delivers it normally: give the child that situation.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def assert_ctrl_c_while_streaming_exits_130_and_stores_nothing(
    home: Path, fake_llm: FakeLLM, env: dict[str, str]
) -> None:
    """Ctrl-C once the answer streams: exit 130, no entry, an episode that says so (also used by test_helper)."""
    fake_llm.enqueue(Reply.trickle("a b c d e f g h i j k l m n o p", interval=0.5))
    proc = subprocess.Popen(
        [*AICACHE, "ask", "stream slowly"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        preexec_fn=_default_sigint,
    )
    assert proc.stdout is not None
    proc.stdout.read(1)  # the stream has started
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert rows(home, "SELECT COUNT(*) FROM entries") == [(0,)]
    assert rows(home, "SELECT outcome, error FROM episodes") == [("error", "interrupted")]


def test_ctrl_c_while_streaming_exits_130_and_leaves_no_entry_or_lock(aicache_home: Path, fake_llm: FakeLLM) -> None:
    env = cli_env(aicache_home, OPENAI_BASE_URL=fake_llm.openai_url, OPENAI_API_KEY="sk-x")
    assert_ctrl_c_while_streaming_exits_130_and_stores_nothing(aicache_home, fake_llm, env)
    fake_llm.enqueue(Reply.text("done"))
    assert ask(aicache_home, fake_llm, "stream slowly").stdout == b"done\n"


INTERRUPTIONS = [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]


def assert_an_interrupted_json_ask_says_so(
    home: Path, fake_llm: FakeLLM, env: dict[str, str], signum: int, code: int, error: str
) -> None:
    """Ctrl-C or SIGTERM while a --json ask waits for the provider: the JSON error object on stdout, the signal's
    exit status, and an episode that says so (also used by test_helper)."""
    fake_llm.enqueue(Reply.hang(60))
    proc = subprocess.Popen(
        [*AICACHE, "ask", "a slow question", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 60
    while not fake_llm.requests and time.monotonic() < deadline:  # the request is out: the ask is waiting
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert json.loads(out) == {"version": 2, "error": error, "exit_code": code}
    assert rows(home, "SELECT outcome, error FROM episodes ORDER BY id DESC LIMIT 1") == [("error", "interrupted")]


@pytest.mark.parametrize(("signum", "code", "error"), INTERRUPTIONS)
def test_an_interrupted_json_ask_says_so_in_json_and_is_recorded(
    aicache_home: Path, fake_llm: FakeLLM, signum: int, code: int, error: str
) -> None:
    env = cli_env(aicache_home, OPENAI_BASE_URL=fake_llm.openai_url, OPENAI_API_KEY="sk-x")
    assert_an_interrupted_json_ask_says_so(aicache_home, fake_llm, env, signum, code, error)


def closed_pipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run aicache with stdout a pipe whose reader has already gone, like `aicache ... | head -c 1` once head has
    its byte (the reading end is closed before aicache starts, so every write meets EPIPE)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [*AICACHE, *args], stdout=write_end, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, timeout=120
        )
    finally:
        os.close(write_end)


def assert_a_closed_pipe_loses_no_answer(home: Path, fake_llm: FakeLLM, env: dict[str, str]) -> None:
    """The reader of stdout has gone: the answer, paid for, is still stored and its episode written, and the
    command ends quietly with 141, as SIGPIPE ends a Unix tool (also used by test_helper)."""
    answer = "a long answer, line after line\n" * 100
    fake_llm.enqueue(Reply.text(answer))
    closed = closed_pipe(env, "ask", "pipe closed early question")
    assert (closed.returncode, closed.stderr) == (141, b"cache: miss (stored)\n")
    assert rows(home, "SELECT outcome, error, entry_id IS NOT NULL FROM episodes") == [("miss", None, 1)]
    again = subprocess.run(
        [*AICACHE, "ask", "--cache-only", "pipe closed early question"], env=env, capture_output=True, timeout=120
    )
    assert (again.returncode, again.stdout) == (0, answer.encode()), again.stderr
    assert len(fake_llm.requests) == 1


def test_a_closed_pipe_ends_quietly_with_141_and_loses_no_answer(aicache_home: Path, fake_llm: FakeLLM) -> None:
    env = cli_env(aicache_home, OPENAI_BASE_URL=fake_llm.openai_url, OPENAI_API_KEY="sk-x")
    assert_a_closed_pipe_loses_no_answer(aicache_home, fake_llm, env)
    hit = closed_pipe(env, "ask", "pipe closed early question")
    assert (hit.returncode, hit.stderr) == (141, b"cache: exact hit\n")
    assert closed_pipe(env, "log").returncode == 141  # every command, not only ask
    failed = closed_pipe(env, "ask", "--json", "--cache-only", "never asked")
    assert failed.stderr == b"aicache: error: not in the cache (--cache-only)\n"  # the failure is still told
    outcomes = rows(aicache_home, "SELECT outcome FROM episodes ORDER BY id")
    assert outcomes == [("miss",), ("exact_hit",), ("exact_hit",), ("cache_miss",)]


def test_bad_input(aicache_home: Path, fake_llm: FakeLLM) -> None:
    empty = ask(aicache_home, fake_llm)
    assert empty.returncode == 2 and b"nothing to ask" in empty.stderr
    huge = ask(aicache_home, fake_llm, "summarize", stdin=b"x" * 10_000_000)
    assert huge.returncode == 2 and b"limit" in huge.stderr
    assert fake_llm.requests == []
    cp1252 = ask(aicache_home, fake_llm, "translate", stdin=b"caf\xe9 cr\xe8me \x93br\xfbl\xe9e\x94")
    assert cp1252.returncode == 0 and b"not valid UTF-8" in cp1252.stderr
    assert "\ufffd" in fake_llm.requests[-1].body["messages"][-1]["content"]
    sent = len(fake_llm.requests)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
    binary = ask(aicache_home, fake_llm, "what is this", stdin=png)
    assert binary.returncode == 2 and b"standard input looks binary (a NUL byte at offset 8)" in binary.stderr
    image = aicache_home / "logo.png"
    image.write_bytes(png)
    attached = ask(aicache_home, fake_llm, "describe", "-a", str(image), "--no-stdin")
    assert attached.returncode == 2 and b"logo.png looks binary" in attached.stderr
    assert len(fake_llm.requests) == sent  # nothing sent, and nothing recorded as asked
    unknown = ask(aicache_home, fake_llm, "x", "-p", "nosuch")
    assert unknown.returncode == 5 and b"unknown provider" in unknown.stderr
    assert b"Traceback" not in empty.stderr + huge.stderr + unknown.stderr


def test_secrets_are_redacted_before_sending_and_storing(aicache_home: Path, fake_llm: FakeLLM) -> None:
    secret_diff = (
        b"+OPENAI_API_KEY=sk-proj-SECRETSECRETSECRETSECRET1234\n"
        b"+aws = AKIAIOSFODNN7EXAMPLE\n"
        b"+-----BEGIN RSA PRIVATE KEY-----\n+MIIEpAIBAAKCAQEAsecretbody\n+-----END RSA PRIVATE KEY-----\n"
    )
    result = ask(
        aicache_home,
        fake_llm,
        "review this diff, token ghp_SECRETSECRETSECRETSECRETSECRETSECRET1",
        stdin=secret_diff,
    )
    assert result.returncode == 0 and b"redacted" in result.stderr
    sent = fake_llm.requests[-1].raw
    stored = b"".join(p.read_bytes() for p in (aicache_home / "data").iterdir() if p.is_file())
    for secret in (b"SECRETSECRET", b"AKIAIOSFODNN7EXAMPLE", b"secretbody"):
        assert secret not in sent and secret not in stored


def test_anthropic_provider(aicache_home: Path, fake_llm: FakeLLM) -> None:
    env = {"ANTHROPIC_API_KEY": "sk-ant-test-key-0123456789"}
    cfg = aicache_home / "config.toml"
    cfg.write_text(
        cfg.read_text() + f'[providers.anthropic]\nbase_url = "{fake_llm.url}"\nsend_key_to_custom_base_url = true\n'
    )
    fake_llm.enqueue(Reply.text("hello from claude"))
    result = ask(aicache_home, None, "hi", "-m", "claude-3-5-haiku-latest", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello from claude\n"
    assert fake_llm.requests[-1].path == "/v1/messages"
    assert fake_llm.requests[-1].headers["x-api-key"] == "sk-ant-test-key-0123456789"


def test_command_provider_wraps_another_cli(aicache_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "fake_ai.py"
    script.write_text("import sys\nprint('echo:', sys.stdin.read().strip().upper())\n")
    cfg = aicache_home / "config.toml"
    cfg.write_text(cfg.read_text() + f'[providers.command]\nargv = ["{sys.executable}", "{script}"]\n')
    first = ask(aicache_home, None, "shout this", "-p", "command")
    assert first.returncode == 0, first.stderr
    assert first.stdout == b"echo: SHOUT THIS\n"
    again = ask(aicache_home, None, "shout this", "-p", "command")
    assert b"exact hit" in again.stderr


def test_log_and_stats(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("use git commit --amend", usage=(10, 20)))
    ask(aicache_home, fake_llm, "fix the last commit message")
    ask(aicache_home, fake_llm, "fix the last commit message")
    ask(aicache_home, fake_llm, "unrelated thing about docker")
    found = run(aicache_home, None, "log", "-q", "commit", "--json")
    episodes = json.loads(found.stdout)["episodes"]
    assert [e["outcome"] for e in episodes] == ["exact_hit", "miss"]
    assert run(aicache_home, None, "log", "-n", "1", "--json").stdout.count(b'"id"') == 1
    table = run(aicache_home, None, "log", "-q", "docker")
    assert b"docker" in table.stdout and b"commit" not in table.stdout
    stats = json.loads(run(aicache_home, None, "stats", "--json").stdout)["models"]
    (model,) = stats
    assert model["exact_hits"] == 1 and model["misses"] == 2 and model["tokens_saved"] == 30


def test_log_finds_a_word_inside_unspaced_chinese_or_japanese_text(aicache_home: Path, fake_llm: FakeLLM) -> None:
    # FTS5 reads "東京の天気を教えて" as one word: "天気" inside it was never found.
    fake_llm.enqueue(Reply.text("東京は晴れです"), Reply.text("大阪は雨です"))
    ask(aicache_home, fake_llm, "東京の天気を教えて")
    ask(aicache_home, fake_llm, "東京の天気を教えて")  # an exact hit: its answer is the first episode's
    ask(aicache_home, fake_llm, "大阪の天気を教えて")

    def found(query: str) -> list[str]:
        episodes = json.loads(run(aicache_home, None, "log", "-q", query, "--json").stdout)["episodes"]
        return [e["outcome"] for e in episodes]

    assert found("天気") == ["miss", "exact_hit", "miss"]
    assert found("東京") == ["exact_hit", "miss"]
    assert found("晴れ") == ["exact_hit", "miss"]  # in the answer, served by the hit
    assert found("東京 雨") == [] and found("大阪 雨") == ["miss"]  # every word must be there


def test_stats_days_refuses_a_window_of_no_time_and_says_when_it_is_empty(
    aicache_home: Path, fake_llm: FakeLLM
) -> None:
    ask(aicache_home, fake_llm, "fix the last commit message")
    for days in ("0", "-3"):  # refused as `log -n 0` is
        refused = run(aicache_home, None, "stats", "--days", days)
        lines = refused.stderr.decode().splitlines()
        assert refused.returncode == 2 and len(lines) == 1 and f"{days} is not above 0" in lines[0]
    conn = sqlite3.connect(aicache_home / "data" / "aicache.db")
    with conn:
        conn.execute("UPDATE episodes SET ts = ts - 10 * 86400")  # asked ten days ago
    conn.close()
    old = run(aicache_home, None, "stats", "--days", "3")
    assert old.returncode == 0 and old.stderr.decode().strip() == "no episodes in the last 3 days"
    assert b"fix" not in old.stdout and run(aicache_home, None, "stats", "--days", "30").stdout.count(b"\n") == 2


def test_a_command_that_only_reads_never_moves_a_damaged_store_aside(aicache_home: Path, fake_llm: FakeLLM) -> None:
    # The user's case: 20 KB overwritten in the middle of the file. `log` still read what it needed, but `stats`
    # met the damage and moved the whole store aside, taking every episode from view.
    for i in range(12):
        fake_llm.enqueue(Reply.text(f"answer {i}: " + "rename the branch with git branch -m " * 100))
        assert ask(aicache_home, fake_llm, f"question {i} about rename").returncode == 0
    path = aicache_home / "data" / "aicache.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 20480] = bytes(range(256)) * 80
    path.write_bytes(bytes(data))
    failed = []
    for command in (["log"], ["log", "-q", "rename"], ["log", "--json"], ["stats"], ["stats", "--json"]):
        found = run(aicache_home, None, *command)
        if found.returncode != 0:
            (line,) = found.stderr.decode().splitlines()
            assert found.returncode == 6 and f"the cache database {path} is damaged" in line, line
            assert "left in place" in line and "moves it aside" in line
            failed.append(command)
        assert path.read_bytes() == bytes(data)  # still there, as it was: what can be read stays readable
        assert not list(path.parent.glob("aicache.db.corrupt-*"))
    assert failed  # the damage was met


def test_config_and_keys(aicache_home: Path) -> None:
    assert run(aicache_home, None, "config", "set", "model", "gpt-4.1-mini").returncode == 0
    shown = json.loads(run(aicache_home, None, "config", "show", "--json").stdout)
    assert shown["settings"]["model"] == "gpt-4.1-mini"
    assert run(aicache_home, None, "config", "set", "nonsense.key", "1").returncode == 5
    assert run(aicache_home, None, "keys", "set", "openai", stdin=b"sk-stored-key-0123456789\n").returncode == 0
    key_file = Path(run(aicache_home, None, "keys", "path").stdout.decode().strip())
    assert key_file.stat().st_mode & 0o777 == 0o600
    listed = run(aicache_home, None, "keys", "list").stdout
    assert b"openai" in listed and b"sk-stored-key-0123456789" not in listed
    key_file.write_text("{not json")
    broken = run(aicache_home, None, "keys", "list")
    assert broken.returncode == 5 and b"keys.json" in broken.stderr


def test_a_corrupt_key_file_blocks_no_hit_and_is_reported_on_a_miss(aicache_home: Path, fake_llm: FakeLLM) -> None:
    assert ask(aicache_home, fake_llm, "how do I list branches").returncode == 0
    (aicache_home / "keys.json").write_text("{not json")
    # A hit needs no key: the key file used to be read first, so the hit failed with exit 5.
    hit = ask(aicache_home, fake_llm, "how do I list branches")
    assert hit.returncode == 0, hit.stderr
    assert b"exact hit" in hit.stderr and b"keys.json" not in hit.stderr
    # A miss must send a request: then the damaged file is an error, as before, and nothing is sent.
    miss = ask(aicache_home, fake_llm, "how do I delete a branch")
    assert miss.returncode == 5 and b"keys.json" in miss.stderr and b"not valid JSON" in miss.stderr
    assert len(fake_llm.requests) == 1


def test_database_file_is_private(aicache_home: Path, fake_llm: FakeLLM) -> None:
    ask(aicache_home, fake_llm, "anything")
    assert (aicache_home / "data" / "aicache.db").stat().st_mode & 0o777 == 0o600


def test_exact_hit_imports_nothing_heavy(aicache_home: Path, fake_llm: FakeLLM) -> None:
    assert ask(aicache_home, fake_llm, "warm the cache").returncode == 0
    env = cli_env(aicache_home, OPENAI_BASE_URL=fake_llm.openai_url)
    probe = (
        "import sys; from aicache.cli import main; sys.argv = ['aicache', 'ask', 'warm the cache']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY:' + ' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert b"cache: exact hit" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == b"HEAVY:"
    import_only = subprocess.run(
        [sys.executable, "-c", f"import sys, aicache.cli; print([m for m in {HEAVY!r} if m in sys.modules])"],
        capture_output=True,
        env=cli_env(aicache_home),
    )
    assert import_only.stdout.strip() == b"[]"


def test_concurrent_asks_lose_nothing(aicache_home: Path, fake_llm: FakeLLM) -> None:
    """8 processes x 50 asks against one store at once: every episode present, never 'database is locked'."""
    worker = (
        "import sys\n"
        "from aicache import config, db\n"
        "from aicache.flow import AskContext, ask\n"
        "from aicache.request import AskRequest\n"
        "ctx = AskContext(settings=config.load(), conn=db.connect(), api_key='k')\n"
        "for i in range(50):\n"
        "    q = f'question {i % 20} from the pool'\n"
        "    ask(AskRequest(question=q, provider='openai', model='m', base_url=sys.argv[1]), ctx, lambda t: None)\n"
    )
    env = cli_env(aicache_home)
    procs = [
        subprocess.Popen([sys.executable, "-c", worker, fake_llm.openai_url], env=env, stderr=subprocess.PIPE)
        for _ in range(8)
    ]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), b"\n".join(errors).decode()[-2000:]
    assert not any(b"locked" in e for e in errors)
    assert rows(aicache_home, "SELECT COUNT(*) FROM episodes") == [(400,)]
    assert rows(aicache_home, "SELECT COUNT(*) FROM entries") == [(20,)]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_an_id_too_large_for_sqlite_names_nothing_as_any_missing_id_does(aicache_home: Path) -> None:
    huge = "99999999999999999999999"  # past SQLite's INTEGER: binding it raised OverflowError, exit 1
    for command, missing in (
        (["show", huge], "no episode"),
        (["why", huge], "no episode"),
        (["feedback", huge, "good"], "no episode"),
        (["feedback", huge, "good", "--json"], "no episode"),
        (["proposals", "show", huge], "no proposal"),
        (["proposals", "reject", huge], "no proposal"),
        (["log", "-n", huge], "not in the range 1<=x<=9223372036854775807"),
    ):
        refused = run(aicache_home, None, *command)
        (line,) = refused.stderr.decode().splitlines()
        assert refused.returncode == 2 and missing in line, (command, line)


def test_a_home_that_is_a_file_is_one_configuration_error_for_every_command(tmp_path: Path) -> None:
    home = tmp_path / "not-a-dir"
    home.write_text("")  # log, stats and proposals list failed with "unexpected NotADirectoryError", exit 1
    for command in (["log"], ["stats"], ["show", "1"], ["proposals", "list"], ["ask", "--cache-only", "hi"]):
        refused = run(home, None, *command)
        assert refused.returncode == 5, command
        assert refused.stderr.decode().splitlines() == [f"aicache: error: AICACHE_HOME={home} is not a directory"]


def test_errors_are_one_line_and_debug_shows_traceback(aicache_home: Path) -> None:
    (aicache_home / "config.toml").write_text("this is = = not toml")
    plain = run(aicache_home, None, "ask", "x")
    assert plain.returncode == 5 and len(plain.stderr.strip().splitlines()) == 1
    debug = run(aicache_home, None, "ask", "x", env={"AICACHE_DEBUG": "1"})
    assert b"Traceback" in debug.stderr


def test_unexpected_errors_are_one_line_exit_1_and_debug_shows_traceback(
    aicache_home: Path, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    # A damaged installation is a fault aicache does not expect: a copy of the package whose own redaction
    # patterns no longer parse, so the real ask fails with an exception that is no AicacheError.
    damaged = tmp_path / "damaged"
    shutil.copytree(ROOT / "aicache", damaged / "aicache", ignore=shutil.ignore_patterns("__pycache__"))
    (damaged / "aicache" / "data" / "redact.toml").write_text("[[pattern]\nname = ")
    env = cli_env(aicache_home, OPENAI_BASE_URL=fake_llm.openai_url, PYTHONPATH=str(damaged))

    def damaged_ask(**extra: str) -> subprocess.CompletedProcess[bytes]:
        # run from the copy: ``python -m`` puts the working directory first on sys.path
        return subprocess.run(
            [*AICACHE, "ask", "x"],
            cwd=damaged,
            env={**env, **extra},
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )

    plain = damaged_ask()
    assert plain.returncode == 1, plain.stderr
    (line,) = plain.stderr.decode().strip().splitlines()
    assert line.startswith("aicache: error: unexpected TOMLDecodeError: ") and "AICACHE_DEBUG=1" in line
    debug = damaged_ask(AICACHE_DEBUG="1")
    assert debug.returncode == 1 and b"Traceback" in debug.stderr and b"TOMLDecodeError" in debug.stderr
    assert fake_llm.requests == []  # nothing was sent unredacted


DROP_AND_ASK = """
import os, sys
import tomllib, sqlite3, json, hashlib, shlex, unicodedata
import aicache.cli, aicache.flow, aicache.cache, aicache.memory, aicache.prepare, aicache.providers.openai
import aicache.config, aicache.db, aicache.migrations, aicache.credentials
import aicache.redact, aicache.inputs, aicache.output
from aicache.providers.http import import_httpx
import_httpx()  # everything imported before dropping privileges: the interpreter's own files may be root-only
import aicache.providers.command
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
sys.argv = ["aicache", "ask", *sys.argv[1:]]
aicache.cli.main()
"""


@pytest.fixture
def private_home(aicache_home: Path) -> Iterator[Path]:
    """A home outside pytest's temporary root, with this test's config: a child that drops to nobody must reach
    it, and any pytest starting on the machine (another worker, another checkout) resets that root to 0700."""
    home = Path(tempfile.mkdtemp(prefix="aicache-ro-", dir="/tmp"))
    home.chmod(0o755)
    shutil.copy(aicache_home / "config.toml", home / "config.toml")
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_hits_still_work_from_a_read_only_store(private_home: Path, fake_llm: FakeLLM) -> None:
    """A read-only data directory at the CLI: the hit is served, the episode write fails with a warning, writes fail
    clearly; both warnings show with --quiet and are listed in --json, with no episode id."""
    home = private_home
    assert ask(home, fake_llm, "cached question").returncode == 0
    cfg = home / "config.toml"  # a miss through /bin/echo: no imports needed after dropping privileges
    cfg.write_text(cfg.read_text() + '[providers.command]\nargv = ["/bin/echo", "from echo"]\n')
    data = home / "data"
    if os.geteuid() == 0:  # root ignores file modes: the child drops to nobody, who must own nothing here
        for path in (home, data, *home.iterdir(), *data.iterdir()):
            os.chown(path, 65534, 65534)
    for path in data.iterdir():
        path.chmod(0o444)
    data.chmod(0o555)
    env = cli_env(home, OPENAI_BASE_URL=fake_llm.openai_url, OPENAI_API_KEY="sk-x")
    try:
        hit = subprocess.run([sys.executable, "-c", DROP_AND_ASK, "cached question"], capture_output=True, env=env)
        assert hit.returncode == 0, hit.stderr
        assert hit.stdout == b"answer to: cached question\n" and b"not recorded" in hit.stderr
        miss = subprocess.run(
            [sys.executable, "-c", DROP_AND_ASK, "new question", "-p", "command", "--quiet"],
            capture_output=True,
            env=env,
        )
        # The provider answered: the answer is shown, and not being able to keep it is a warning.
        assert (miss.returncode, miss.stdout) == (0, b"from echo\n"), miss.stderr
        (warning,) = miss.stderr.decode().splitlines()  # --quiet hides notes, not this
        assert warning.startswith("aicache: warning: the answer was not saved") and "read-only" in warning
        for args, expected in (
            (["cached question"], "episode was not recorded"),
            (["other", "-p", "command"], "not saved"),
        ):
            shown = subprocess.run(
                [sys.executable, "-c", DROP_AND_ASK, *args, "--json", "--quiet"], capture_output=True, env=env
            )
            assert shown.returncode == 0, shown.stderr
            fields = json.loads(shown.stdout)
            assert fields["episode_id"] is None and len(fields["warnings"]) == 1, fields
            assert expected in fields["warnings"][0] and expected in shown.stderr.decode()
    finally:
        data.chmod(0o700)
        for path in data.iterdir():
            path.chmod(0o600)


# A full disk inside a private mount namespace: a 1 MB tmpfs over the home, filled up after the first ask but for
# 64 KB.
FULL_DISK_SCRIPT = r"""
mount -t tmpfs -o size=1m tmpfs "$AICACHE_HOME" || exit 99
cp "$OUT/config.toml" "$AICACHE_HOME/config.toml"
"$@" ask "a first question" > "$OUT/first.out" 2> "$OUT/first.err" || exit 98
cat /dev/zero > "$AICACHE_HOME/filler" 2> /dev/null
truncate -s -64K "$AICACHE_HOME/filler"  # room to open the store (its 32 KB shared-memory file), not to write
"$@" ask --json "a question asked on a full disk" > "$OUT/full.out" 2> "$OUT/full.err"
echo $? > "$OUT/full.rc"
cp -r "$AICACHE_HOME/data" "$OUT/data"
"""


def _ask_on_a_full_disk(
    how: str, home: Path, server: FakeLLM, out: Path, answer: str
) -> tuple[int, bytes, bytes, Path]:
    """Ask with a real full disk under the store; returns exit code, stdout, stderr and a copy of the home after."""
    env = cli_env(home, OPENAI_API_KEY="sk-test-0123456789", OPENAI_BASE_URL=server.openai_url)
    out.mkdir()
    if how == "tmpfs":
        (out / "config.toml").write_bytes((home / "config.toml").read_bytes())
        server.enqueue(Reply.text("first"), Reply.text(answer))
        done = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", FULL_DISK_SCRIPT, "sh", *AICACHE],
            env={**env, "OUT": str(out)},
            capture_output=True,
            timeout=120,
        )
        if done.returncode in (99, 1) and not (out / "full.rc").exists():
            pytest.skip(f"cannot mount a tmpfs in a user namespace here: {done.stderr.decode().strip()}")
        assert done.returncode == 0 and (out / "first.err").read_bytes().endswith(b"cache: miss (stored)\n")
        copy = out / "home"
        copy.mkdir()
        (out / "data").rename(copy / "data")
        full = (out / "full.out").read_bytes(), (out / "full.err").read_bytes()
        return int((out / "full.rc").read_text()), *full, copy
    # A file size limit (RLIMIT_FSIZE): every write past it fails (EFBIG) as it would on a full disk. The store
    # exists and its shared-memory file (32 KB) fits; the answer's pages do not fit in the write-ahead log.
    server.enqueue(Reply.text("first"), Reply.text(answer))
    assert subprocess.run([*AICACHE, "ask", "a first question"], env=env, capture_output=True).returncode == 0
    limit = 64 * 1024
    done = subprocess.run(
        [*AICACHE, "ask", "--json", "a question asked on a full disk"],
        env=env,
        capture_output=True,
        timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )
    return done.returncode, done.stdout, done.stderr, home


@pytest.mark.parametrize("how", ["tmpfs", "file size limit"])
def test_an_answer_is_shown_even_when_the_disk_is_full(
    how: str, aicache_home: Path, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    answer = "the answer the user paid for " * 4000  # ~110 KB: more than the room left
    code, stdout, stderr, home = _ask_on_a_full_disk(how, aicache_home, fake_llm, tmp_path / "out", answer)
    assert code == 0, stderr
    shown = json.loads(stdout)
    assert shown["answer"] == answer and shown["cached"] is False and shown["entry_id"] is None
    warning = [line for line in stderr.decode().splitlines() if "not saved" in line]
    assert len(warning) == 1 and "Traceback" not in stderr.decode(), stderr
    assert len(fake_llm.requests) == 2
    # Nothing half-written: the first ask's entry and episode, and nothing of the second.
    assert rows(home, "SELECT question FROM entries") == [("a first question",)]
    assert rows(home, "SELECT question FROM episodes") == [("a first question",)]


def slow_model_config(home: Path) -> None:
    """No retries, and a read timeout far above the fake model's delay: one request per provider call."""
    (home / "config.toml").write_text("[cache]\nsemantic = false\n[http]\nretries = 0\nread_timeout = 60\n")


def test_identical_concurrent_misses_call_the_provider_once(aicache_home: Path, fake_llm: FakeLLM) -> None:
    slow_model_config(aicache_home)
    fake_llm.delay = 3.0  # the other seven start while the first one waits for its answer
    env = cli_env(aicache_home, OPENAI_API_KEY="sk-test-0123456789", OPENAI_BASE_URL=fake_llm.openai_url)
    procs = [
        subprocess.Popen(
            [*AICACHE, "ask", "how do I squash the last three commits"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(8)
    ]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 8, results
    assert {out for out, _err in results} == {b"answer to: how do I squash the last three commits\n"}
    assert len(fake_llm.requests) == 1
    outcomes = rows(aicache_home, "SELECT outcome, COUNT(*) FROM episodes GROUP BY outcome ORDER BY outcome")
    assert outcomes == [("exact_hit", 7), ("miss", 1)]


def test_a_waiter_asks_itself_when_the_first_identical_miss_fails(aicache_home: Path, fake_llm: FakeLLM) -> None:
    # Whichever process asks first gets the error (after a while); the other then asks and gets the answer.
    slow_model_config(aicache_home)
    fake_llm.enqueue(Reply.status(401, "bad key", delay=3.0), Reply.text("the answer"))
    env = cli_env(aicache_home, OPENAI_API_KEY="sk-test-0123456789", OPENAI_BASE_URL=fake_llm.openai_url)
    procs = [
        subprocess.Popen(
            [*AICACHE, "ask", "--json", "how do I squash"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert sorted(proc.returncode for proc in procs) == [0, 3], results
    # --json: the one that failed printed its error object on stdout too
    answered = next(json.loads(out) for out, _err in results if out and b'"answer"' in out)
    assert answered["answer"] == "the answer" and answered["outcome"] == "miss"
    assert len(fake_llm.requests) == 2


@pytest.mark.slow
def test_first_run_prepares_the_model_only_to_store_an_answer_and_leaves_its_time_out(
    aicache_home: Path, fake_llm: FakeLLM
) -> None:
    (aicache_home / "config.toml").write_text("[http]\nretries = 0\n")  # the semantic tier on, no model exported
    models = aicache_home / "data" / "models"
    fake_llm.enqueue(Reply.status(401, "bad key"))
    failed = ask(aicache_home, fake_llm, "how do I undo the last commit")
    assert failed.returncode == 3, failed.stderr
    bypass = ask(aicache_home, fake_llm, "--no-cache", "how do I undo the last commit")
    assert bypass.returncode == 0, bypass.stderr
    for nothing_to_store in (failed, bypass):
        assert b"embedding model" not in nothing_to_store.stderr
    assert not list(models.rglob("model.onnx"))
    fake_llm.enqueue(Reply.text("git reset --soft HEAD~1"))
    first = ask(aicache_home, fake_llm, "how do I undo the last commit")
    assert (first.returncode, first.stdout) == (0, b"git reset --soft HEAD~1\n"), first.stderr
    notes = first.stderr.decode()
    assert notes.count("preparing the embedding model") == 1, notes
    took = re.search(r"the embedding model is ready \(took ([0-9.]+) s\)", notes)
    assert took is not None, notes
    assert list(models.rglob("model.onnx"))
    hit = ask(aicache_home, fake_llm, "how do I undo the last commit")
    assert b"cache: exact hit" in hit.stderr and b"embedding model" not in hit.stderr
    # The export's time is neither the miss's latency nor time the hit saved.
    [(latency_ms,)] = rows(aicache_home, "SELECT latency_ms FROM episodes WHERE outcome = 'miss'")
    assert latency_ms / 1000 < float(took.group(1))
    stats = json.loads(run(aicache_home, None, "stats", "--json").stdout)["models"]
    assert sum(model["seconds_saved"] for model in stats) < float(took.group(1))


def test_why_on_a_failed_ask_shows_the_error(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.status(400, "bad request"))
    assert ask(aicache_home, fake_llm, "a question").returncode != 0
    shown = run(aicache_home, None, "why", "1")
    assert shown.returncode == 0, shown.stderr
    summary = shown.stdout.decode().splitlines()[0]
    assert summary.startswith("episode 1: error: the ask failed: ") and "400" in summary, summary
    assert "came close enough" not in shown.stdout.decode()
    data = json.loads(run(aicache_home, None, "why", "1", "--json").stdout)
    assert data["summary"].startswith("error: the ask failed: ") and data["episode"]["error"] in data["summary"]


def test_stats_cost_saved_is_unknown_when_no_hits_cost_is_known(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("use git commit --amend", usage=(10, 20)))
    ask(aicache_home, fake_llm, "fix the last commit message")  # no price for the model yet: cost unknown
    ask(aicache_home, fake_llm, "fix the last commit message")
    (model,) = json.loads(run(aicache_home, None, "stats", "--json").stdout)["models"]
    assert (model["cost_saved"], model["cost_unknown_hits"]) == (None, 1)
    header, row = (line.split("\t") for line in run(aicache_home, None, "stats").stdout.decode().splitlines())
    assert row[header.index("cost saved")] == "unknown"
    with (aicache_home / "config.toml").open("a") as config:
        config.write('[prices."gpt-4o-mini"]\ninput = 1.0\noutput = 2.0\n')
    fake_llm.enqueue(Reply.text("5432", usage=(100, 200)))
    ask(aicache_home, fake_llm, "default postgres port")
    ask(aicache_home, fake_llm, "default postgres port")
    (priced,) = json.loads(run(aicache_home, None, "stats", "--json").stdout)["models"]
    assert (priced["cost_saved"], priced["cost_unknown_hits"]) == (0.0005, 1)  # one hit priced, one not
    header, row = (line.split("\t") for line in run(aicache_home, None, "stats").stdout.decode().splitlines())
    assert row[header.index("cost saved")] == "$0.0005 (+1 hit unknown)"


def test_stats_counts_every_outcome_so_they_add_up(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("a1"), Reply.text("a2"), Reply.text("a3"), Reply.status(400, "bad request"))
    ask(aicache_home, fake_llm, "first question")  # miss
    ask(aicache_home, fake_llm, "first question")  # exact hit
    ask(aicache_home, fake_llm, "first question", "--refresh")  # refresh
    ask(aicache_home, fake_llm, "second question", "--no-cache")  # bypass
    ask(aicache_home, fake_llm, "third question")  # error
    ask(aicache_home, fake_llm, "fourth question", "--cache-only")  # cache miss
    (model,) = json.loads(run(aicache_home, None, "stats", "--json").stdout)["models"]
    counts = ("exact_hits", "semantic_hits", "misses", "cache_misses", "refreshes", "bypasses", "errors")
    assert [model[name] for name in counts] == [1, 0, 1, 1, 1, 1, 1]
    assert sum(model[name] for name in counts) == model["total"] == 6
    assert model["hit_rate"] == 1 / 3  # the hit, the miss and the cache-only miss looked in the cache
    header, row = (line.split("\t") for line in run(aicache_home, None, "stats").stdout.decode().splitlines())
    shown = dict(zip(header, row, strict=True))
    columns = ("exact", "semantic", "misses", "cache-only misses", "refreshes", "no-cache", "errors")
    assert sum(int(shown[name]) for name in columns) == int(shown["asks"]) == 6 and shown["hit rate"] == "33%"
    assert shown["judged"] == "0" and (model["judged"], model["judge_yes"]) == (0, 0)  # no LLM judge was asked
