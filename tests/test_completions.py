"""Shell completion: the generated scripts in completions/ are current, and bash completes commands and values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aicache import completions
from tests.conftest import ROOT, cli_env


@pytest.mark.parametrize("name", sorted(completions.SCRIPTS))
def test_completion_scripts_are_current(name: str) -> None:
    shipped = (ROOT / "completions" / name).read_text(encoding="utf-8")
    assert shipped == completions.SCRIPTS[name](), f"completions/{name} is stale: run `make completions`"


def fish_quoted(line: str) -> list[str]:
    """The single-quoted strings of a fish command line, unescaped as fish does (only \\' and \\\\ inside quotes);
    AssertionError if a quote is left open."""
    found: list[str] = []
    current: list[str] | None = None
    i = 0
    while i < len(line):
        c = line[i]
        if current is None:
            if c == "'":
                current = []
        elif c == "\\" and line[i + 1 : i + 2] in ("\\", "'"):
            current.append(line[i + 1])
            i += 1
        elif c == "'":
            found.append("".join(current))
            current = None
        else:
            current.append(c)
        i += 1
    assert current is None, f"unbalanced quotes: {line}"
    return found


def test_fish_descriptions_keep_their_apostrophes_inside_the_quotes() -> None:
    lines = completions.fish().splitlines()
    quoted = [word for line in lines for word in fish_quoted(line)]
    assert "Remove aicache's hooks and restore exactly what was there before." in quoted
    # show's help names what judges a semantic hit today (the decision), not the verifier of earlier versions
    assert (
        "One episode in full: question, answer, outcome, timing, tokens, cost and the hit decision's verdicts."
        in quoted
    )


def bash_complete(home: Path, tmp_path: Path, line: str) -> list[str]:
    """What bash's Tab offers at the end of ``line``, with the shipped script and `aicache` on PATH."""
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "aicache").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m aicache "$@"\n')
    (shim / "aicache").chmod(0o755)
    words = line.split(" ")
    script = (
        f"source {ROOT / 'completions' / 'aicache.bash'}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        '_aicache; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = cli_env(home)
    env["PATH"] = f"{shim}:{env['PATH']}"
    proc = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [w for w in proc.stdout.splitlines() if w]


def test_bash_completes_values_of_options_and_arguments(aicache_home: Path, tmp_path: Path) -> None:
    aicache_home.mkdir(parents=True, exist_ok=True)
    (aicache_home / "config.toml").write_text('model = "gpt-4o-mini"\n[aliases]\nfast = "openai/gpt-4o"\n')
    assert bash_complete(aicache_home, tmp_path, "aicache ask -m ") == ["fast", "gpt-4o-mini"]
    assert bash_complete(aicache_home, tmp_path, "aicache ask --provider o") == ["openai", "ollama"]
    assert bash_complete(aicache_home, tmp_path, "aicache ask -t comm") == ["commit-message"]
    assert bash_complete(aicache_home, tmp_path, "aicache config set cache.th") == ["cache.threshold"]
    assert bash_complete(aicache_home, tmp_path, "aicache log --outcome exa") == ["exact_hit"]
    assert bash_complete(aicache_home, tmp_path, "aicache hook run p") == ["prepare-commit-msg", "post-commit"]
    assert bash_complete(aicache_home, tmp_path, "aicache ask --no-c") == ["--no-cache"]
    assert "show" in bash_complete(aicache_home, tmp_path, "aicache s") and not (aicache_home / "data").exists()


def test_setting_names_are_every_setting_of_the_schema() -> None:
    from aicache import schema

    offered = set(completions.setting_names())
    assert {"decision.threshold", "decision.kind", "index.ef_search", "decision.templates.", "prices."} <= offered
    assert {s.name for s in schema.SETTINGS if "*" not in s.name} <= offered


def test_the_complete_command_reads_models_from_the_store_without_changing_it(
    aicache_home: Path, conn: object, tmp_path: Path
) -> None:
    import sqlite3

    assert isinstance(conn, sqlite3.Connection)
    conn.execute(
        "INSERT INTO entries (partition_key, exact_key, question, answer, model, created_at) "
        "VALUES ('p', 'k', 'q', 'a', 'llama3.2', 0)"
    )
    conn.commit()
    assert "llama3.2" in bash_complete(aicache_home, tmp_path, "aicache ask -m ")
