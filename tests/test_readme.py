"""The README's examples, run: every command its usage summary names exists, and the examples that need no
network (settings, hooks, the example configuration) succeed against a fresh home.

Code blocks are the README's indented blocks. A line whose first part (before a run of spaces) holds a
placeholder (``QUESTION``, ``[--json]``, ``a|b``) is a usage summary: each command it names must answer
``--help``. Any other line that runs ``aicache`` is an example, run when its command is one that needs no
network (``OFFLINE``); the rest (``ask``, ``why`` of a real episode) need a provider and are left to the tests
that bring one. And across the docs, code and help texts, every file named as a document (``*.md``) is in the
repository and every ``aicache`` command quoted is one that exists.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.conftest import AICACHE, ROOT, cli_env

README = ROOT / "README.md"
OFFLINE = {
    ("config", "set"),
    ("config", "show"),
    ("config", "path"),
    ("keys", "list"),
    ("keys", "path"),
    ("hook", "install"),
    ("hook", "status"),
    ("hook", "uninstall"),
    ("helper", "status"),
    ("log",),
    ("stats",),
}


def code_blocks(text: str) -> list[list[str]]:
    """Indented blocks that follow a blank line, as lists of lines without the indent."""
    blocks: list[list[str]] = []
    current: list[str] = []
    previous_blank = True
    for line in text.splitlines():
        if line.startswith("    ") and (current or previous_blank):
            current.append(line[4:])
        elif current and not line.strip():
            current.append("")
        elif current:
            blocks.append(current)
            current = []
        previous_blank = not line.strip()
    if current:
        blocks.append(current)
    return blocks


def aicache_lines() -> list[str]:
    lines = []
    for block in code_blocks(README.read_text(encoding="utf-8")):
        for line in block:
            text = line.removeprefix("$ ").strip()
            if text.startswith("aicache "):
                lines.append(text)
    return lines


def _placeholder(word: str) -> bool:
    return word.startswith(("[", "-")) or word.endswith("...") or (word.isupper() and word.isalpha())


def is_summary(line: str) -> bool:
    synopsis = re.split(r"\s{2,}", line)[0]
    return any(_placeholder(word) or "|" in word for word in synopsis.split()[1:])


def summary_commands(line: str) -> list[tuple[str, ...]]:
    """``aicache hook install|uninstall|status [--global DIR]`` -> hook install, hook uninstall, hook status."""
    synopsis = re.split(r"\s{2,}", line)[0].removeprefix("aicache ")
    alternatives = [alt.split() for alt in re.split(r"\s*\|\s*", synopsis)]
    group = alternatives[0][:1]
    commands = []
    for number, words in enumerate(alternatives):
        words = words if number == 0 else group + words
        kept = []
        for word in words:
            if _placeholder(word):
                break
            kept.append(word)
        commands.append(tuple(kept))
    return commands


def examples() -> list[list[str]]:
    return [shlex.split(line, comments=True)[1:] for line in aicache_lines() if not is_summary(line)]


def test_the_readme_is_parsed_into_summaries_and_examples() -> None:
    summaries = {c for line in aicache_lines() if is_summary(line) for c in summary_commands(line)}
    assert {("ask",), ("log",), ("hook", "install"), ("keys", "path"), ("config", "set")} <= summaries
    offline = [argv for argv in examples() if tuple(argv[:2]) in OFFLINE or tuple(argv[:1]) in OFFLINE]
    assert len(offline) >= 6, offline  # the hook sessions and the command provider's setting at least


@pytest.mark.parametrize(
    "command",
    sorted({c for line in aicache_lines() if is_summary(line) for c in summary_commands(line)}),
    ids=" ".join,
)
def test_every_command_the_usage_names_exists(aicache_home: Path, command: tuple[str, ...]) -> None:
    done = subprocess.run([*AICACHE, *command, "--help"], env=cli_env(aicache_home), capture_output=True, timeout=60)
    assert done.returncode == 0, f"`aicache {' '.join(command)}` in the README: {done.stderr.decode()}"


def test_offline_examples_run(aicache_home: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = cli_env(aicache_home, HOME=str(tmp_path), GIT_CONFIG_GLOBAL=str(tmp_path / "gitconfig"))
    ran = []
    for argv in examples():
        if tuple(argv[:2]) not in OFFLINE and tuple(argv[:1]) not in OFFLINE:
            continue
        done = subprocess.run([*AICACHE, *argv], cwd=repo, env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, f"`aicache {shlex.join(argv)}` from the README: {done.stderr.decode()}"
        ran.append(argv)
    assert ["hook", "uninstall"] in ran and ["config", "set", "providers.command.argv", '["claude", "-p"]'] in ran


def test_the_example_configuration_loads(aicache_home: Path) -> None:
    (block,) = [b for b in code_blocks(README.read_text(encoding="utf-8")) if any("[aliases]" in line for line in b)]
    text = "\n".join(block)
    tomllib.loads(text)  # valid TOML as printed
    aicache_home.mkdir(parents=True, exist_ok=True)
    (aicache_home / "config.toml").write_text(text)
    done = subprocess.run([*AICACHE, "config", "show"], env=cli_env(aicache_home), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert b"gpt-4o-mini" in done.stdout


# -- references that must resolve --------------------------------------------------------------------------

# CHANGELOG.md is left out: it records history, including what was removed.
SOURCES = sorted(
    [ROOT / "README.md", ROOT / "Makefile", ROOT / ".ci" / "run", ROOT / "pyproject.toml"]
    + [
        p
        for d in ("aicache", "tests", "benchmarks", "tools")
        for p in (ROOT / d).rglob("*")
        if p.suffix in {".py", ".toml"}
    ]
)
# a command as written in docs, help and messages: `aicache hook install`, ``aicache keys set``, 'aicache ...'
COMMAND = re.compile(r"(?:`|')aicache ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")
DOC_FILE = re.compile(r"(?<![\w/])((?:[\w-]+/)*[A-Z][A-Z_]+\.md)\b|\b(DESIGN|RELIABILITY) (?:decision )?\d")


def test_named_files_are_in_the_repository() -> None:
    missing = [
        f"{path.relative_to(ROOT)}: {m.group(0)}"
        for path in SOURCES
        for m in DOC_FILE.finditer(path.read_text(encoding="utf-8"))
        if not (m.group(1) and (ROOT / m.group(1)).exists())
    ]
    assert missing == []


def test_named_commands_exist() -> None:
    from aicache.cli import command

    commands = command().commands  # type: ignore[attr-defined]
    unknown = []
    for path in SOURCES:
        for m in COMMAND.finditer(path.read_text(encoding="utf-8")):
            top, sub = m.group(1), m.group(2)
            if top == "argv":  # "``aicache argv``": the command line in general, in the helper's docstrings
                continue
            group = commands.get(top)
            subcommands = getattr(group, "commands", None)
            if group is None or (subcommands and sub and sub not in subcommands and not sub.startswith("-")):
                unknown.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    assert unknown == []
