"""The staged diff a commit message is written from: what is left out, and how a large diff is cut.

Collection
    Plain ``git diff --cached`` in the environment the caller passes (GitPython would cost ~100 ms of import on
    every commit). Inside a hook that is git's own environment: ``GIT_DIR`` and ``GIT_INDEX_FILE`` name the
    commit being made, including the temporary index of ``git commit -a`` and ``git commit <paths>``. Git is
    run with ``GIT_OPTIONAL_LOCKS=0`` (no opportunistic index refresh is written) and with external diff
    drivers, textconv and colour off and the ``a/`` ``b/`` prefixes forced, so the text depends on what is
    staged rather than on how the user likes to read diffs. Two git calls: ``--numstat -z`` lists every
    changed file (binary files show ``-``), then one patch for the files that are kept, with the others
    excluded by pathspec, so a 5 MB lock file is never even read.

Left out (named in a summary line, never shown)
    * binary files;
    * lock files (``LOCK_FILES``: package-lock.json, yarn.lock, poetry.lock, Cargo.lock, go.sum, ...);
    * minified files, source maps and files that usually hold secrets (``DEFAULT_IGNORES``);
    * paths matched by the repository's ``.aicacheignore``: gitignore syntax, matched as git matches a
      ``.gitignore`` at the root (``#`` comments, ``!`` re-includes, ``\\`` escapes, trailing spaces dropped
      unless escaped, a trailing ``/`` matches directories only, a pattern with a ``/`` before its end is
      anchored at the repository root, ``*`` ``?`` ``[...]`` and ``**``). Rules are read defaults first, then
      the file; the last matching rule wins, so ``!poetry.lock`` sends poetry.lock's diff again. As in git, a
      file under a left-out directory stays left out whatever a later rule says about the file itself (``dir/``
      then ``!dir/a`` leaves a out; ``dir/*`` then ``!dir/a`` brings it back). tests/test_ignore.py checks this
      against ``git check-ignore``. pathspec's gitignore matcher was measured as the alternative: its import
      adds 20-60 ms to every commit's hook, and on that table, with the same walk down the directories, it
      disagreed with git (it rejects ``trail\\\\  ``, and with ``*`` ``!*/`` ``!*.py`` left out ``src/a.py``).

Size rule (``limit`` bytes of UTF-8; the hook's setting is ``hook.max_diff_bytes``, default 32,000)
    * A diff that fits is sent whole, followed by one line naming the files left out, if any.
    * Otherwise the text starts with a summary, one line per changed file in git's order
      (``src/app.py (+12 -3)``, left-out files marked), then file diffs in git's order. Files are *chosen*
      smallest first, so one huge file cannot crowd out many small ones: each file is shown whole if it fits
      in what is left of the limit, else as many of its leading hunks as fit, followed by
      ``[... N of M hunks of <path> left out]``; a file with no room left appears in the summary only.
      A summary longer than the limit itself is cut to ``[... and N more files]``.
    * git's output is read up to ``max(8 x limit, 1 MB)`` bytes, so memory stays bounded whatever is staged;
      files past that point are in the summary only.

Secrets in what is kept are redacted later, by ``prepare`` (the same rule as for any piped input).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aicache.errors import AicacheError

LOCK_FILES = (
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lock",
    "bun.lockb",
    "poetry.lock",
    "Pipfile.lock",
    "pdm.lock",
    "uv.lock",
    "conda-lock.yml",
    "Cargo.lock",
    "go.sum",
    "Gemfile.lock",
    "composer.lock",
    "mix.lock",
    "pubspec.lock",
    "Podfile.lock",
    "Package.resolved",
    "packages.lock.json",
    "gradle.lockfile",
    "flake.lock",
    ".terraform.lock.hcl",
)
DEFAULT_IGNORES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("lock file", LOCK_FILES),
    ("minified or generated", ("*.min.js", "*.min.css", "*.map")),
    ("may hold secrets", (".env", ".env.local", ".env.*.local", "*.pem", "*.key", "id_rsa", "id_ed25519")),
)
IGNORE_FILE = ".aicacheignore"
USER_REASON = f"in {IGNORE_FILE}"
MIN_RAW_BYTES = 1_000_000
GIT_TIMEOUT = 30.0  # seconds; the hook's own deadline is shorter, this only stops a wedged git for other callers


@dataclass(frozen=True)
class FileChange:
    path: str  # repository-relative, as git printed it (undecodable bytes kept as surrogates)
    old_path: str | None  # the source of a rename or copy
    added: int | None  # None for a binary file
    deleted: int | None
    skipped: str | None = None  # why the diff is left out: "binary", "lock file", "in .aicacheignore", ...

    @property
    def label(self) -> str:
        name = _printable(self.path)
        return f"{_printable(self.old_path)} -> {name}" if self.old_path else name

    @property
    def counts(self) -> str:
        return "binary" if self.added is None else f"+{self.added} -{self.deleted}"


@dataclass(frozen=True)
class StagedDiff:
    text: str  # what goes to the model; "" when nothing is staged
    files: tuple[FileChange, ...]
    cut: bool  # whether the size rule shortened the diff

    @property
    def shown(self) -> tuple[FileChange, ...]:
        return tuple(f for f in self.files if f.skipped is None)


# -- ignore rules -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool
    anchored: bool
    reason: str


def _translate(glob: str) -> str:
    """A gitignore glob as a regular expression over a repository-relative path."""
    out, i, n = [], 0, len(glob)
    while i < n:
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and (end := glob.find("]", i + 2)) != -1:
            body = glob[i + 1 : end]
            body = "^/" + body[1:] if body.startswith("!") else body  # a negated class never matches a slash
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif glob[i] == "\\" and i + 1 < n:
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def _trim_trailing_spaces(line: str) -> str:
    """git's rule: trailing spaces go, unless escaped with a backslash (``foo\\ `` keeps one)."""
    spaces_from: int | None = None  # where the current run of unescaped spaces starts
    i = 0
    while i < len(line):
        if line[i] == " ":
            spaces_from = i if spaces_from is None else spaces_from
        else:
            spaces_from = None
            if line[i] == "\\":
                i += 1  # the next character is escaped, a space included
        i += 1
    return line if spaces_from is None else line[:spaces_from]


def parse_rules(lines: Iterable[str], reason: str) -> list[Rule]:
    rules = []
    for line in lines:
        text = _trim_trailing_spaces(line.rstrip("\n").rstrip("\r"))
        if not text or text.startswith("#"):
            continue
        negate = text.startswith("!")
        text = text[1:] if negate else text
        dir_only = text.endswith("/")
        text = text.rstrip("/")
        anchored = "/" in text  # a slash at the start or in the middle anchors the pattern at the root
        text = text.lstrip("/")
        if text:
            rules.append(Rule(re.compile(_translate(text)), negate, dir_only, anchored, reason))
    return rules


def default_rules() -> list[Rule]:
    return [rule for reason, globs in DEFAULT_IGNORES for rule in parse_rules(globs, reason)]


def load_rules(root: Path) -> list[Rule]:
    """Defaults, then ``<root>/.aicacheignore`` if there is one (later rules win)."""
    rules = default_rules()
    path = root / IGNORE_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return rules
    except OSError as exc:
        raise AicacheError(f"cannot read {path}: {exc.strerror}") from None
    return rules + parse_rules(text.splitlines(), USER_REASON)


def _last_match(parts: list[str], is_dir: bool, rules: list[Rule]) -> Rule | None:
    """The last rule matching this file or directory itself (not one of its parents)."""
    for rule in reversed(rules):
        if rule.dir_only and not is_dir:
            continue
        if rule.regex.fullmatch("/".join(parts) if rule.anchored else parts[-1]):
            return rule
    return None


def ignored_reason(path: str, rules: list[Rule]) -> str | None:
    """Why the file ``path`` is left out, or None.

    As git does: each directory on the way down first, and a directory left out leaves out everything below it
    (git never looks inside, so no rule about a file in it can bring that file back); then the file itself.
    """
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        rule = _last_match(parts[:depth], depth < len(parts), rules)
        if rule is not None and not rule.negate:
            return rule.reason
    return None


# -- reading git --------------------------------------------------------------------------------------------

_DIFF_OPTIONS = ("-M", "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/")


def _git_env(env: Mapping[str, str]) -> dict[str, str]:
    return {**env, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def _fail(args: list[str], stderr: bytes, code: int) -> AicacheError:
    detail = stderr.decode("utf-8", "replace").strip().splitlines()
    return AicacheError(f"git {args[0]} failed ({code}): {detail[-1] if detail else 'no message'}")


def _numstat(cwd: Path, env: Mapping[str, str]) -> list[FileChange]:
    args = ["diff", "--cached", "--numstat", "-z", *_DIFF_OPTIONS]
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=_git_env(env),
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=GIT_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise _fail(args, proc.stderr, proc.returncode)
    tokens = [os.fsdecode(t) for t in proc.stdout.split(b"\0")]
    files, i = [], 0
    while i < len(tokens) and tokens[i]:
        added, deleted, path = tokens[i].split("\t", 2)
        old = None
        if not path:  # a rename or copy: "added\tdeleted\t\0old\0new\0"
            old, path = tokens[i + 1], tokens[i + 2]
            i += 2
        i += 1
        binary = added == "-"
        files.append(FileChange(path, old, None if binary else int(added), None if binary else int(deleted)))
    return files


def _patch(cwd: Path, env: Mapping[str, str], excluded: list[str], max_raw: int) -> tuple[bytes, bool]:
    """git's patch for every file but ``excluded``, read up to ``max_raw`` bytes; (bytes, cut short)."""
    pathspecs = [f":(top,exclude,literal){p}" for p in excluded]
    args = ["diff", "--cached", *_DIFF_OPTIONS, "--", *pathspecs]
    with subprocess.Popen(
        ["git", *args],
        cwd=cwd,
        env=_git_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        data = proc.stdout.read(max_raw + 1)
        if len(data) > max_raw:
            proc.kill()  # the rest is not needed: later files are named in the summary only
            proc.wait()
            return data[:max_raw], True
        stderr = proc.stderr.read()
        code = proc.wait(timeout=GIT_TIMEOUT)
    if code != 0:
        raise _fail(args, stderr, code)
    return data, False


def _split_files(patch: bytes) -> list[str]:
    """One text per file: each starts at a ``diff --git`` line (content lines always start with a prefix)."""
    text = patch.decode("utf-8", "replace")
    starts = [m.start() for m in re.finditer(r"^diff --git ", text, re.MULTILINE)]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def _hunks(file_diff: str) -> tuple[str, list[str]]:
    """(header, hunks): the lines before the first ``@@`` and each hunk from its ``@@`` line."""
    starts = [m.start() for m in re.finditer(r"^@@ ", file_diff, re.MULTILINE)]
    if not starts:
        return file_diff, []
    bounds = [*starts[1:], len(file_diff)]
    return file_diff[: starts[0]], [file_diff[a:b] for a, b in zip(starts, bounds, strict=True)]


# -- the size rule ------------------------------------------------------------------------------------------


def _printable(path: str | None) -> str:
    return (path or "").encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _left_out_line(files: list[FileChange]) -> str:
    skipped = [
        f"{f.label} ({f.skipped if f.added is None else f'{f.skipped}, {f.counts}'})" for f in files if f.skipped
    ]
    return f"Also changed, diff not shown: {', '.join(skipped)}\n" if skipped else ""


def _summary(files: list[FileChange], limit: int) -> str:
    lines = [f"Staged changes: {len(files)} files; the diff below is cut to fit {limit:,} bytes.\n"]
    for f in files:
        note = f", {f.skipped}: diff not shown" if f.skipped else ""
        lines.append(f"  {f.label} ({f.counts}{note})\n")
    text = ""
    for kept, line in enumerate(lines):
        if _size(text + line) > limit // 2:  # leave at least half of the limit for the diffs themselves
            return text + f"  [... and {len(lines) - kept} more files]\n"
        text += line
    return text


def _fit(file_diff: str, path: str, budget: int) -> str:
    """The whole file diff if it fits in ``budget``, else its header and the leading hunks that fit."""
    if _size(file_diff) <= budget:
        return file_diff
    header, hunks = _hunks(file_diff)

    def note(left: int) -> str:
        return f"[... {left} of {len(hunks)} hunks of {_printable(path)} left out]\n"

    shown, count = header, 0
    for hunk in hunks:
        if _size(shown + hunk + note(len(hunks) - count - 1)) > budget:
            break
        shown, count = shown + hunk, count + 1
    result = shown + note(len(hunks) - count)
    return result if _size(result) <= budget else ""


def _cut(kept: list[tuple[FileChange, str]], files: list[FileChange], limit: int) -> str:
    summary = _summary(files, limit)
    budget = limit - _size(summary)
    chosen: dict[int, str] = {}
    for index in sorted(range(len(kept)), key=lambda i: (_size(kept[i][1]), i)):
        piece = _fit(kept[index][1], kept[index][0].path, budget)
        if piece:
            chosen[index] = piece
            budget -= _size(piece)
    return summary + "".join(chosen[i] for i in sorted(chosen))


def staged_diff(cwd: Path, env: Mapping[str, str], rules: list[Rule], limit: int) -> StagedDiff:
    """The staged diff in ``cwd``'s repository, with files left out and cut by the rules in the docstring."""
    files = [
        FileChange(
            f.path, f.old_path, f.added, f.deleted, "binary" if f.added is None else ignored_reason(f.path, rules)
        )
        for f in _numstat(cwd, env)
    ]
    if not files:
        return StagedDiff("", (), False)
    excluded = [p for f in files if f.skipped for p in (f.path, f.old_path) if p]
    kept_files = [f for f in files if f.skipped is None]
    raw, raw_cut = _patch(cwd, env, excluded, max(8 * limit, MIN_RAW_BYTES)) if kept_files else (b"", False)
    pieces = _split_files(raw)
    if raw_cut and pieces:
        header, hunks = _hunks(pieces[-1])
        pieces[-1] = header + "".join(hunks[:-1])  # the last hunk read may be incomplete
    if len(pieces) > len(kept_files) or (len(pieces) < len(kept_files) and not raw_cut):
        raise AicacheError(f"git printed {len(pieces)} file diffs for {len(kept_files)} files; not sent")
    kept = list(zip(kept_files, pieces, strict=False))
    whole = "".join(piece for _, piece in kept) + _left_out_line(files)
    if _size(whole) <= limit and not raw_cut:
        return StagedDiff(whole, tuple(files), False)
    return StagedDiff(_cut(kept, files, limit), tuple(files), True)
