"""Feedback labels and the negative list: an answer marked wrong is never served again for that question."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.fakellm import FakeLLM, Reply
from tests.test_cli import ask, rows, run
from tests.test_semantic import export_run, model_home, onnx_models  # noqa: F401  (fixtures)


def test_feedback_bad_on_an_exact_hit_asks_again_and_keeps_the_new_answer(
    aicache_home: Path, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(Reply.text("wrong answer"), Reply.text("right answer"))
    assert ask(aicache_home, fake_llm, "what port does postgres use").stdout == b"wrong answer\n"
    assert ask(aicache_home, fake_llm, "what port does postgres use").stdout == b"wrong answer\n"
    marked = run(aicache_home, None, "feedback", "bad")  # the newest episode of this directory: the hit
    assert marked.returncode == 0, marked.stderr
    assert b"marked wrong" in marked.stderr
    again = ask(aicache_home, fake_llm, "what port does postgres use")
    assert again.stdout == b"right answer\n" and b"cache: miss" in again.stderr
    assert ask(aicache_home, fake_llm, "what port does postgres use").stdout == b"right answer\n"
    assert len(fake_llm.requests) == 2
    assert rows(aicache_home, "SELECT source, good FROM labels") == [("feedback", 0)]


def test_feedback_names_an_episode_and_can_change_its_mind(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("5432"))
    ask(aicache_home, fake_llm, "default postgres port")
    episode = rows(aicache_home, "SELECT id FROM episodes")[0][0]
    assert run(aicache_home, None, "feedback", str(episode), "bad").returncode == 0
    good = run(aicache_home, None, "feedback", str(episode), "good", "--json")
    assert good.returncode == 0 and b'"good": true' in good.stdout
    assert rows(aicache_home, "SELECT good FROM labels") == [(1,)]  # the later word replaces the earlier one
    assert rows(aicache_home, "SELECT feedback FROM episodes") == [("good",)]
    assert ask(aicache_home, fake_llm, "default postgres port").stdout == b"5432\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["maybe"], b"usage: aicache feedback"),
        (["12", "34", "bad"], b"usage: aicache feedback"),
        (["first", "bad"], b"must be an episode id"),
        (["999", "bad"], b"no episode 999"),
        (["bad"], b"no answer was recorded in"),
    ],
)
def test_feedback_refuses_what_it_cannot_label(
    aicache_home: Path, fake_llm: FakeLLM, args: list[str], message: bytes
) -> None:
    result = run(aicache_home, None, "feedback", *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_failed_ask_has_no_answer_to_label(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.status(400, "bad request"))
    assert ask(aicache_home, fake_llm, "a question").returncode != 0
    result = run(aicache_home, None, "feedback", "1", "bad")
    assert result.returncode == 2 and b"stored no answer to label" in result.stderr
    alone = run(aicache_home, None, "feedback", "bad")
    assert alone.returncode == 2 and b"no answer was recorded in" in alone.stderr
    assert rows(aicache_home, "SELECT COUNT(*) FROM labels") == [(0,)]


def test_feedback_without_an_id_labels_the_newest_answer_past_errors_and_cache_only_misses(
    aicache_home: Path, fake_llm: FakeLLM
) -> None:
    fake_llm.enqueue(Reply.text("5432"), Reply.status(400, "bad request"))
    assert ask(aicache_home, fake_llm, "default postgres port").returncode == 0  # episode 1: the answer
    assert ask(aicache_home, fake_llm, "a question that fails").returncode != 0  # episode 2: an error
    assert ask(aicache_home, fake_llm, "never asked", "--cache-only").returncode != 0  # episode 3: nothing cached
    marked = run(aicache_home, None, "feedback", "bad")
    assert marked.returncode == 0, marked.stderr
    assert marked.stderr.startswith(b"episode 1: answer marked wrong")
    assert rows(aicache_home, "SELECT episode_id, good FROM labels") == [(1, 0)]


def _wait_for(home: Path, sql: str, deadline: float = 120.0) -> list[tuple[object, ...]]:
    """Poll the store until ``sql`` returns rows (a shadow check runs detached, on its own time)."""
    import time

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = rows(home, sql)
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"nothing came of: {sql}")


@pytest.mark.slow
@pytest.mark.usefixtures("model_home")  # the session's exported model, linked into this test's home
def test_shadow_checks_label_a_refused_candidate_and_a_semantic_hit(aicache_home: Path, fake_llm: FakeLLM) -> None:
    home = aicache_home
    (home / "config.toml").write_text(
        '[cache]\nsemantic = true\n[decision]\nkind = "rules"\n[judge]\nmodel = "gpt-4o-mini"\n'
        "[learn]\nshadow_rate = 1.0\n"
        "[http]\nretries = 0\nread_timeout = 10\n"
    )
    fake_llm.enqueue(Reply.text("git branch -m new-name"), Reply.text("git branch -d name"), Reply.text("NO"))
    assert ask(home, fake_llm, "how do I rename a git branch").returncode == 0
    assert ask(home, fake_llm, "how do I delete a git branch").returncode == 0
    refused = _wait_for(home, "SELECT good, source, entry_id FROM labels")
    assert refused == [(0, "shadow", 1)]  # the rename answer, judged wrong for the delete question
    judge_prompt = fake_llm.requests[-1].body["messages"][-1]["content"]
    assert "how do I delete a git branch" in judge_prompt and "git branch -d name" in judge_prompt

    fake_llm.enqueue(Reply.text("git branch -m new-name"), Reply.text("YES"))
    hit = ask(home, fake_llm, "how can I rename a branch in git")
    assert hit.returncode == 0 and b"semantic hit" in hit.stderr, hit.stderr
    good = _wait_for(home, "SELECT good FROM labels WHERE good = 1")
    assert good == [(1,)]
    assert len(fake_llm.requests) == 5  # two asks, one judge; then the shadow's provider call and its judge


def test_labelling_leaves_the_connection_as_it_found_it(conn: sqlite3.Connection) -> None:
    from aicache import labels

    conn.execute(
        "INSERT INTO entries (exact_key, partition_key, question, answer, created_at) VALUES ('k', 'p', 'q', 'a', 1)"
    )
    conn.execute(
        "INSERT INTO episodes (question, outcome, partition_key, entry_id, ts) VALUES ('q', 'miss', 'p', 1, 1)"
    )
    factory = conn.row_factory
    labels.label_episode(conn, 1, good=False, source="feedback")
    assert conn.row_factory is factory  # the flow goes on using this connection after a --refresh label


def test_the_exact_tier_itself_refuses_an_answer_labelled_wrong(conn: sqlite3.Connection) -> None:
    # In the exact tier's lookup, not only in the ask flow: a process that waited for another's identical miss
    # reads the stored entry through it too, and must not be handed an answer marked wrong.
    from aicache import cache, labels
    from aicache.request import exact_key

    key = exact_key("p", "q")
    conn.execute(
        "INSERT INTO entries (exact_key, partition_key, question, answer, created_at) VALUES (?, 'p', 'q', 'a', 1)",
        (key,),
    )
    conn.execute(
        "INSERT INTO episodes (question, outcome, partition_key, entry_id, ts) VALUES ('q', 'miss', 'p', 1, 1)"
    )
    assert cache.lookup_exact(conn, key) is not None
    labels.label_episode(conn, 1, good=False, source="feedback")
    assert cache.lookup_exact(conn, key) is None
    conn.execute("UPDATE entries SET created_at = 2 WHERE id = 1")  # refreshed: the new answer is not refused
    assert cache.lookup_exact(conn, key) is not None


def test_why_and_show_say_an_entry_was_refused_because_it_was_marked_wrong(
    aicache_home: Path, fake_llm: FakeLLM
) -> None:
    import json

    fake_llm.enqueue(Reply.text("wrong answer"), Reply.text("right answer"))
    ask(aicache_home, fake_llm, "what port does postgres use")
    ask(aicache_home, fake_llm, "what port does postgres use")
    assert run(aicache_home, None, "feedback", "2", "bad").returncode == 0
    assert ask(aicache_home, fake_llm, "what port does postgres use").stdout == b"right answer\n"  # episode 3
    why = run(aicache_home, None, "why", "3").stdout.decode()
    said = "cached entry 1 refused: episode 2 marked its answer wrong (feedback)"
    assert why.splitlines()[0] == f"episode 3: miss: {said}", why
    assert json.loads(run(aicache_home, None, "why", "3", "--json").stdout)["marked_wrong"] == [
        {"entry_id": 1, "episode_id": 2, "source": "feedback"}
    ]
    shown = run(aicache_home, None, "show", "3").stdout.decode()
    assert "refused entry 1: episode 2 marked its answer wrong (feedback)" in shown, shown
    # The new answer replaced the refused one: later asks of it owe nothing to the label.
    assert b"exact hit" in ask(aicache_home, fake_llm, "what port does postgres use").stderr  # episode 4
    assert "marked" not in run(aicache_home, None, "why", "4").stdout.decode()
    assert json.loads(run(aicache_home, None, "show", "4", "--json").stdout)["marked_wrong"] == []
