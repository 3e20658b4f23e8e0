"""``.aicacheignore`` says "gitignore syntax": the matcher must agree with git itself on every pattern here.

Each case is a real repository in ``tmp_path`` with the patterns as its ``.gitignore`` and the paths as real
files; ``git check-ignore --no-index`` is the reference, with no user or system git configuration in play.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from aicache.hooks import diffs

CASES: list[tuple[list[str], list[str]]] = [
    # a file under an excluded directory cannot be re-included (git does not even look inside)
    (["vendor/", "!vendor/keep.js"], ["vendor/keep.js", "vendor/a.js", "src/vendor/x.js", "keep.js"]),
    (["build", "!build/out.txt"], ["build/out.txt", "build/x/y.txt"]),
    # ... but a directory's contents can be excluded and one of them re-included
    (["dir/*", "!dir/keep/"], ["dir/keep/x.txt", "dir/other/x.txt", "dir/file.txt"]),
    (["*.log", "!important.log"], ["a.log", "important.log", "d/important.log", "d/b.log"]),
    (["*", "!*/", "!*.py"], ["src/a.py", "src/a.txt", "top.txt", "top.py"]),
    # trailing spaces are dropped unless escaped with a backslash
    (["foo\\ "], ["foo ", "foo"]),
    (["bar  "], ["bar", "bar "]),
    (["trail\\  "], ["trail ", "trail"]),
    # escapes at the start: a literal # and !
    (["\\#hash", "\\!bang"], ["#hash", "!bang"]),
    (["# a comment", "", "   "], ["# a comment", "a"]),
    # anchoring: a slash at the start or in the middle anchors at the root; a slash at the end means directories
    (["/build"], ["build/x.txt", "src/build/x.txt"]),
    (["a/b"], ["a/b", "x/a/b"]),
    (["doc/frotz/"], ["doc/frotz/x.txt", "a/doc/frotz/x.txt"]),
    (["frotz/"], ["a/frotz/x.txt", "frotz"]),
    (["*.txt", "!/a.txt"], ["a.txt", "d/a.txt"]),
    # wildcards
    (["docs/**/*.md"], ["docs/a.md", "docs/x/y/b.md", "docs/a.txt", "x/docs/a.md"]),
    (["**/temp"], ["temp", "a/temp", "a/b/temp/c.txt"]),
    (["a/**"], ["a/x.txt", "a/b/c.txt", "b/a/x.txt"]),
    (["abc/**/def"], ["abc/def", "abc/x/y/def", "x/abc/def"]),
    (["foo/*"], ["foo/bar/baz.txt", "foo/top.txt", "x/foo/top.txt"]),
    (["?.c", "[abc].txt", "[!x]y.md"], ["a.c", "ab.c", "d/a.c", "a.txt", "d.txt", "zy.md", "xy.md"]),
    (["*.min.js", "!keep.min.js"], ["a/b.min.js", "keep.min.js", "x/keep.min.js"]),
]


def git_ignored(repo: Path, patterns: list[str], paths: list[str]) -> set[str]:
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("".join(f"{p}\n" for p in patterns))
    for path in paths:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).touch()
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin", "-z"],
        cwd=repo,
        env=env,
        input="".join(f"{p}\0" for p in paths).encode(),
        capture_output=True,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: nothing ignored
    return {p.decode() for p in done.stdout.split(b"\0") if p}


@pytest.mark.parametrize(("patterns", "paths"), CASES, ids=[" | ".join(c[0]) for c in CASES])
def test_the_matcher_agrees_with_git(tmp_path: Path, patterns: list[str], paths: list[str]) -> None:
    expected = git_ignored(tmp_path / "repo", patterns, paths)
    rules = diffs.parse_rules(patterns, diffs.USER_REASON)
    got = {path for path in paths if diffs.ignored_reason(path, rules)}
    assert got == expected, f"git ignores {sorted(expected)}, the matcher {sorted(got)}"


def test_defaults_come_first_and_say_why(tmp_path: Path) -> None:
    rules = diffs.default_rules() + diffs.parse_rules(["!poetry.lock", "secrets/", "!secrets/ok.txt"], "mine")
    assert diffs.ignored_reason("web/yarn.lock", rules) == "lock file"
    assert diffs.ignored_reason("poetry.lock", rules) is None
    assert diffs.ignored_reason("app.min.js", rules) == "minified or generated"
    assert diffs.ignored_reason("secrets/ok.txt", rules) == "mine"  # its directory is left out: so is it
