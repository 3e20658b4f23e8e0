"""Git hooks: suggest a commit message from the staged diff, and learn how much of it the user kept.

Install
    ``install`` finds the hooks directory the way git does (``git rev-parse --git-path hooks``, so
    ``core.hooksPath``, husky-style setups and linked worktrees work) and writes two POSIX sh scripts,
    ``prepare-commit-msg`` and ``post-commit``. A hook already there is never overwritten: it is renamed to
    ``<name>.aicache-chained`` (a rename keeps its bytes, mode and times), our script runs it first and
    respects its exit status, and ``uninstall`` renames it back. ``.aicache-hooks.json`` in the same directory
    records what install did (a fingerprint of each kept hook, whether it set the global ``core.hooksPath``);
    uninstall works from the files themselves and uses the record to check and report, so a hook the user
    put in place of ours after install is left alone. ``--global DIR`` installs into DIR and points the global
    ``core.hooksPath`` at it, unless that already points somewhere else.

The scripts
    bake in the interpreter and the directory aicache was imported from, so they work without PATH or an
    activated virtualenv, and they call ``main`` here rather than the Typer CLI: importing Typer (and the
    pydantic it pulls in) costs ~150 ms, more than the rest of a cache hit. Decisions that need no Python are
    made in sh: a commit with a message source (``-m``, ``-F``, template, merge, squash, amend) never starts
    Python, nor does a post-commit with no pending suggestion. Python runs with stdin from /dev/null and, in
    ``main``, leaves the terminal's session, so nothing it starts can prompt. The scripts set
    ``AICACHE_IN_HOOK=1`` for it and do nothing when they find it already set: a commit made by something
    aicache started (a wrapped AI CLI, ``aicache learn``) never asks aicache again.

prepare-commit-msg
    The staged diff (``aicache.diffs``: lock, binary and ignored files left out, cut to ``hook.max_diff_bytes``)
    is the piped input of an ask with the ``hook.template`` template (default ``commit-message``), so its hash is
    part of the cache partition: the same diff is an instant exact hit, another diff never reuses the answer.
    The semantic tier is off for these asks: the question is always the same sentence, so it could only ever
    match exactly. The suggestion goes above git's comment lines; a pending-suggestion file in the git dir
    (per worktree) remembers it for post-commit. The hook never blocks a commit: all the work runs in a worker
    thread that gets ``hook.timeout`` seconds (default 5; HTTP timeouts are cut to what is left), and on any
    failure, timeout included, one comment line in the message file says why nothing was suggested.

post-commit
    Compares the committed message with the suggestion (``difflib`` ratio, 1.0 = kept as is) and stores
    ``{"kept_similarity": ..., "commit": sha}`` as JSON in the suggestion's episode ``feedback``, for ``learn``.
    Git ignores what post-commit does, so the comparison runs in the background, silently, and the commit
    does not wait for it; the script first claims the pending suggestion (a rename) and the new commit's sha,
    so a next commit started at once can never be compared with this one's suggestion.

Git's environment
    Inside a hook git exports ``GIT_DIR``, ``GIT_INDEX_FILE`` (a temporary index for ``commit -a`` and
    ``commit <paths>``) and friends. The diff is read with them, because they name the commit being made, and
    with ``GIT_OPTIONAL_LOCKS=0`` so git writes no index refresh. Then git's repository-local variables (the
    list ``git rev-parse --local-env-vars`` prints) are removed from the process environment before anything
    else runs (the provider, a wrapped CLI, GitPython), so nothing aicache starts can act on the user's index or
    repository. ``install``, ``uninstall`` and ``status`` drop them from the start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aicache import config
from aicache.config import Settings
from aicache.errors import AicacheError, UsageError

HOOK_NAMES = ("prepare-commit-msg", "post-commit")
MARKER = "# aicache-hook v1"
CHAINED_SUFFIX = ".aicache-chained"
MANIFEST_NAME = ".aicache-hooks.json"
STATE_NAME = "aicache-suggestion.json"
#: set by the scripts (spelled out in their sh) for everything aicache starts; a hook that finds it set does
#: nothing. Set it to skip aicache for one commit, or around commits that aicache's own code makes.
GUARD_ENV = "AICACHE_IN_HOOK"
QUESTION = "Write a commit message for this staged diff."
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_DIFF_BYTES = 32_000
DEFAULT_TEMPLATE = "commit-message"
GIT_TIMEOUT = 10.0
#: git's repository-local variables, as printed by ``git rev-parse --local-env-vars``
LOCAL_GIT_ENV = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
)
ENTRY = "import sys; sys.path.insert(0, sys.argv.pop(1)); from aicache.hooks import main; main()"

if TYPE_CHECKING:
    from aicache.prepare import Prepared, RawAsk

NoteSink = Callable[[str], None]
T = TypeVar("T")


class HookTimeout(AicacheError):
    """The hook's work did not finish within ``hook.timeout``."""


# -- running git --------------------------------------------------------------------------------------------


def scrubbed_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without git's repository-local variables."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in LOCAL_GIT_ENV}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def _git(args: list[str], cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            env={**env, "GIT_OPTIONAL_LOCKS": "0"},
            capture_output=True,
            stdin=subprocess.DEVNULL,
            encoding="utf-8",
            errors="surrogateescape",
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise AicacheError("git is not installed, or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise AicacheError(f"git {args[0]} did not answer within {GIT_TIMEOUT:g} s") from None


def _git_out(args: list[str], cwd: Path, env: Mapping[str, str]) -> str:
    proc = _git(args, cwd, env)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise AicacheError(f"git {' '.join(args)} failed: {lines[-1] if lines else proc.returncode}")
    return proc.stdout.rstrip("\n")


# -- where the hooks are ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HooksDir:
    path: Path
    scope: str  # "repository" or "global"
    hooks_path_setting: str | None  # core.hooksPath as configured, with its scope ("local: .githooks")


def _hooks_path_setting(cwd: Path, env: Mapping[str, str]) -> str | None:
    proc = _git(["config", "--show-scope", "--get", "core.hooksPath"], cwd, env)
    return proc.stdout.strip().replace("\t", ": ", 1) if proc.returncode == 0 else None


def locate(cwd: Path) -> HooksDir:
    """The hooks directory git uses for the repository at ``cwd``."""
    env = scrubbed_env()
    proc = _git(["rev-parse", "--git-path", "hooks"], cwd, env)
    if proc.returncode != 0:
        raise UsageError("not inside a git repository: run this in one, or use --global DIR")
    path = Path(os.path.normpath(cwd / proc.stdout.rstrip("\n")))
    return HooksDir(path, "repository", _hooks_path_setting(cwd, env))


def _global_hooks_path() -> str | None:
    proc = _git(["config", "--global", "--get", "core.hooksPath"], Path.home(), scrubbed_env())
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def _same_dir(setting: str, path: Path) -> bool:
    return Path(os.path.abspath(os.path.expanduser(setting))) == path


def locate_global(directory: Path) -> HooksDir:
    """``directory`` as a global hooks directory (made absolute; ``~`` expanded)."""
    path = Path(os.path.abspath(os.path.expanduser(directory)))
    setting = _global_hooks_path()
    return HooksDir(path, "global", f"global: {setting}" if setting else None)


# -- install, uninstall, status -----------------------------------------------------------------------------

_PREPARE_BODY = """\
# An earlier hook runs first, as it did before aicache; its failure still stops the commit.
if [ -x "$chained" ]; then
    "$chained" "$@" || exit $?
fi
# Set while aicache runs: a commit made by something aicache started must not ask aicache again.
[ -n "${AICACHE_IN_HOOK:-}" ] && exit 0
# A pending suggestion belongs to an earlier commit that never finished.
gitdir=$(git rev-parse --git-dir 2>/dev/null) && rm -f -- "$gitdir/aicache-suggestion.json"
# Only a commit without a message source (-m, -F, template, merge, squash, amend) gets a suggestion.
[ -z "${2:-}" ] || exit 0
if [ ! -x "$python" ]; then
    echo "aicache: $python is gone; run 'aicache hook install' again" >&2
    exit 0
fi
AICACHE_IN_HOOK=1 "$python" -c "$entry" "$root" prepare-commit-msg "$@" </dev/null
exit 0
"""

_POST_BODY = """\
status=0
if [ -x "$chained" ]; then
    "$chained" "$@" || status=$?
fi
[ -n "${AICACHE_IN_HOOK:-}" ] && exit "$status"
# Python starts only when this commit had a suggestion to compare with.
gitdir=$(git rev-parse --git-dir 2>/dev/null) || exit "$status"
{ [ -f "$gitdir/aicache-suggestion.json" ] && [ -x "$python" ]; } || exit "$status"
# Claimed now, with the commit it belongs to: the next commit may start before the comparison runs.
pending="$gitdir/aicache-suggestion.$$.json"
mv -f -- "$gitdir/aicache-suggestion.json" "$pending" || exit "$status"
head=$(git rev-parse HEAD) || exit "$status"
# In the background and silent: git ignores post-commit's result, so the commit need not wait for it.
AICACHE_IN_HOOK=1 "$python" -c "$entry" "$root" post-commit "$pending" "$head" </dev/null >/dev/null 2>&1 &
exit "$status"
"""


def script(name: str, python: str, root: str) -> str:
    """The sh script installed as hook ``name``."""
    head = (
        f"#!/bin/sh\n{MARKER}: {name}\n"
        "# Installed by `aicache hook install`; `aicache hook uninstall` removes it and puts back any hook\n"
        "# that was here before. It never stops a commit: aicache's own failures end in exit 0.\n"
        f"python={shlex.quote(python)}\nroot={shlex.quote(root)}\nentry={shlex.quote(ENTRY)}\n"
        f'chained="$(dirname -- "$0")/{name}{CHAINED_SUFFIX}"\n'
    )
    return head + (_PREPARE_BODY if name == "prepare-commit-msg" else _POST_BODY)


def is_ours(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return MARKER.encode() in handle.read(512)
    except OSError:
        return False


def _fingerprint(path: Path) -> dict[str, str]:
    """What ``uninstall`` checks a restored hook against: its bytes and mode, or its link target."""
    if path.is_symlink():
        return {"symlink": os.readlink(path)}
    return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "mode": oct(path.stat().st_mode & 0o7777)}


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": 1, "hooks": {}}
    except (OSError, ValueError) as exc:
        raise AicacheError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("hooks", {}), dict):
        raise AicacheError(f"{path} is not an aicache hooks record; move it away and try again")
    data.setdefault("hooks", {})
    return data


def _write_atomically(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(path.name + ".aicache-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def package_root() -> str:
    """The directory ``import aicache`` was resolved from, baked into the scripts."""
    return str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class Report:
    """What ``install`` or ``uninstall`` did, as lines for the user."""

    hooks_dir: Path
    scope: str
    actions: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def _point_global_hooks_path(hooks: HooksDir, manifest: dict[str, Any], warnings: list[str]) -> str | None:
    current = _global_hooks_path()
    if current is not None and not _same_dir(current, hooks.path):
        raise UsageError(f"the global core.hooksPath is already {current}; install there (--global {current}) instead")
    if current is not None:
        return None
    _git_out(["config", "--global", "core.hooksPath", str(hooks.path)], Path.home(), scrubbed_env())
    manifest["set_global_hooks_path"] = True
    warnings.append(
        "git now runs hooks from this directory in every repository, instead of each repository's .git/hooks "
        "(a repository's own core.hooksPath still wins)"
    )
    return f"set the global core.hooksPath to {hooks.path}"


@contextlib.contextmanager
def _changing(directory: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise AicacheError(f"cannot change the hooks in {directory}: {exc.strerror or exc}") from None


def install(hooks: HooksDir, python: str | None = None) -> Report:
    """Install both hooks into ``hooks``; an existing hook is kept and chained, never overwritten."""
    with _changing(hooks.path):
        return _install(hooks, python or sys.executable)


def _install(hooks: HooksDir, python: str) -> Report:
    directory = hooks.path
    for name in HOOK_NAMES:
        chained = directory / (name + CHAINED_SUFFIX)
        if not is_ours(directory / name) and os.path.lexists(chained):
            raise UsageError(f"{chained} already exists (left from an earlier install?); move it away first")
    manifest = _read_manifest(directory)
    actions: list[str] = []
    warnings: list[str] = []
    if hooks.scope == "global" and (action := _point_global_hooks_path(hooks, manifest, warnings)):
        actions.append(action)
    directory.mkdir(parents=True, exist_ok=True)
    for name in HOOK_NAMES:
        actions.append(_install_one(directory, name, python, manifest))
    manifest.update(python=python, root=package_root())
    _write_atomically(directory / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n", 0o644)
    return Report(directory, hooks.scope, tuple(actions), tuple(warnings))


def _install_one(directory: Path, name: str, python: str, manifest: dict[str, Any]) -> str:
    target, chained = directory / name, directory / (name + CHAINED_SUFFIX)
    if is_ours(target):
        _write_atomically(target, script(name, python, package_root()), 0o755)
        return f"updated {name}" + (f" (still runs {chained.name} first)" if os.path.lexists(chained) else "")
    entry: dict[str, Any] = {"chained": None, "installed_at": time.time()}
    action = f"installed {name}"
    if os.path.lexists(target):
        entry["chained"] = {"name": chained.name, **_fingerprint(target)}
        os.rename(target, chained)  # a rename: bytes, mode and times stay exactly as they were
        action += f"; your existing hook is kept as {chained.name} and runs first"
    _write_atomically(target, script(name, python, package_root()), 0o755)
    manifest["hooks"][name] = entry
    return action


def uninstall(hooks: HooksDir) -> Report:
    """Remove aicache's hooks from ``hooks`` and put back what was there before, byte for byte."""
    with _changing(hooks.path):
        return _uninstall(hooks)


def _uninstall(hooks: HooksDir) -> Report:
    directory = hooks.path
    manifest = _read_manifest(directory)
    actions: list[str] = []
    warnings: list[str] = []
    for name in HOOK_NAMES:
        _uninstall_one(directory, name, manifest, actions, warnings)
    remaining = [name for name in HOOK_NAMES if is_ours(directory / name)]
    if manifest.get("set_global_hooks_path") and not remaining:
        current = _global_hooks_path()
        if current is not None and _same_dir(current, directory):
            _git_out(["config", "--global", "--unset", "core.hooksPath"], Path.home(), scrubbed_env())
            actions.append("unset the global core.hooksPath that install had set")
    if not remaining:
        with contextlib.suppress(FileNotFoundError):  # an install that never wrote its record
            (directory / MANIFEST_NAME).unlink()
    return Report(directory, hooks.scope, tuple(actions), tuple(warnings))


def _uninstall_one(
    directory: Path, name: str, manifest: dict[str, Any], actions: list[str], warnings: list[str]
) -> None:
    target, chained = directory / name, directory / (name + CHAINED_SUFFIX)
    if os.path.lexists(target) and not is_ours(target):
        if name in manifest["hooks"] or os.path.lexists(chained):
            kept = f"; the hook that was there before aicache is still at {chained}" if os.path.lexists(chained) else ""
            warnings.append(f"{name} is no longer aicache's script, so it was left as it is{kept}")
        return
    if os.path.lexists(target):
        target.unlink()
        actions.append(f"removed {name}")
    if os.path.lexists(chained):
        os.rename(chained, target)
        recorded = (manifest["hooks"].get(name) or {}).get("chained") or {}
        recorded = {k: v for k, v in recorded.items() if k != "name"}
        same = recorded == _fingerprint(target)
        actions.append(
            f"restored your earlier {name}" + (" byte for byte" if same else " (it was changed after install)")
        )


@dataclass(frozen=True)
class HookState:
    name: str
    path: Path
    installed: bool  # aicache's script is in place
    chained: Path | None  # an earlier hook that aicache's script runs first
    other_hook: bool  # a hook that is not aicache's is in place
    python: str | None  # the interpreter the script runs
    python_found: bool


@dataclass(frozen=True)
class Status:
    hooks_dir: Path
    scope: str
    hooks_path_setting: str | None
    hooks: tuple[HookState, ...] = field(default_factory=tuple)


def _script_python(path: Path) -> str | None:
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("python="):
            words = shlex.split(line[len("python=") :])
            return words[0] if words else None
    return None


def status(hooks: HooksDir) -> Status:
    states = []
    for name in HOOK_NAMES:
        target, chained = hooks.path / name, hooks.path / (name + CHAINED_SUFFIX)
        ours = is_ours(target)
        python = _script_python(target) if ours else None
        states.append(
            HookState(
                name=name,
                path=target,
                installed=ours,
                chained=chained if os.path.lexists(chained) else None,
                other_hook=os.path.lexists(target) and not ours,
                python=python,
                python_found=python is not None and os.access(python, os.X_OK),
            )
        )
    return Status(hooks.path, hooks.scope, hooks.hooks_path_setting, tuple(states))


# -- running inside git -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HookRun:
    """What one hook run did: ``done`` is "suggested", "recorded", "skipped" or "failed"."""

    hook: str
    done: str
    detail: str
    seconds: float
    episode_id: int | None = None
    worker_alive: bool = False  # a timed-out worker is still running: the process must exit without it


@dataclass(frozen=True)
class _Repo:
    root: Path
    git_dir: Path  # per worktree: where git keeps COMMIT_EDITMSG, and we the pending suggestion
    comment: str

    @property
    def state_file(self) -> Path:
        return self.git_dir / STATE_NAME


def _repo(env: Mapping[str, str], with_comment: bool = True) -> _Repo:
    cwd = Path.cwd()
    root, git_dir = _git_out(["rev-parse", "--show-toplevel", "--absolute-git-dir"], cwd, env).split("\n")
    comment = "#"
    if with_comment:
        value = _git(["config", "--get", "core.commentChar"], cwd, env).stdout.rstrip("\n")
        comment = value if value and value != "auto" else "#"  # "auto" picks "#" for a message with no text
    return _Repo(Path(root), Path(git_dir), comment)


def within(seconds: float, work: Callable[[], T], timeout_message: str) -> T:
    """Run ``work`` in a daemon thread; raise ``HookTimeout`` if it is still running after ``seconds``."""
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the waiting thread, which re-raises it
            failure.append(exc)

    worker = threading.Thread(target=target, name="aicache-hook", daemon=True)
    worker.start()
    worker.join(max(seconds, 0.0))
    if worker.is_alive():
        raise HookTimeout(timeout_message)
    if failure:
        raise failure[0]
    return result[0]


def _timeout(settings: Settings) -> float:
    value = settings.get("hook.timeout", DEFAULT_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise UsageError(f"hook.timeout must be a positive number of seconds, not {value!r}")
    return float(value)


def _hook_settings(settings: Settings, seconds_left: float) -> Settings:
    """The settings for the hook's ask: no semantic tier, HTTP timeouts within the time that is left."""
    data = dict(settings.data)
    data["cache"] = {**data.get("cache", {}), "semantic": False}
    http = dict(data["http"])
    left = max(seconds_left, 0.1)
    http["connect_timeout"] = min(float(http["connect_timeout"]), left)
    http["read_timeout"] = min(float(http["read_timeout"]), left)
    http["max_retry_after"] = min(float(http["max_retry_after"]), left)
    # one retry at most: a commit is waiting, and a failed attempt should end as a recorded error, not a timeout
    http["retries"] = min(int(http["retries"]), 1)
    data["http"] = http
    return Settings(data)


def _prepared(raw: RawAsk, settings: Settings) -> tuple[Prepared, str | None]:
    """The request and the key it may be sent with: the one place that knows how ``prepare`` is called."""
    from aicache.prepare import prepare

    prepared = prepare(raw, settings)
    return prepared, prepared.api_key


@dataclass(frozen=True)
class _Suggestion:
    text: str
    episode_id: int
    outcome: str
    warnings: tuple[str, ...]


def clean_suggestion(answer: str) -> str:
    """The model's answer as a message: surrounding whitespace and a wrapping code fence removed."""
    text = answer.strip()
    lines = text.splitlines()
    if len(lines) >= 2 and lines[0].startswith("```") and lines[-1].strip() == "```":
        text = "\n".join(lines[1:-1]).strip()
    return text


def _suggest(repo: _Repo, git_env: Mapping[str, str], settings: Settings, deadline: float) -> _Suggestion:
    from aicache import db, diffs
    from aicache.ask import AskContext, ask
    from aicache.prepare import RawAsk

    limit = int(settings.get("hook.max_diff_bytes", DEFAULT_MAX_DIFF_BYTES))
    diff = diffs.staged_diff(repo.root, git_env, diffs.load_rules(repo.root), limit)
    if not diff.text:
        why = "every staged file is left out (binary, lock or ignored)" if diff.files else "nothing is staged"
        raise AicacheError(why)
    scrub_process_env()  # from here on, nothing aicache runs may act on the user's repository or index
    hook_settings = _hook_settings(settings, deadline - time.monotonic())
    raw = RawAsk(
        question=QUESTION,
        stdin=diff.text.encode("utf-8", "surrogateescape"),
        template=str(settings.get("hook.template", DEFAULT_TEMPLATE)),
        model=settings.get("hook.model"),
        provider=settings.get("hook.provider"),
    )
    prepared, api_key = _prepared(raw, hook_settings)
    conn = db.connect()
    try:
        ctx = AskContext(settings=hook_settings, conn=conn, api_key=api_key, stream=False, source="hook", cwd=repo.root)
        result = ask(prepared.request, ctx, lambda _text: None)
    finally:
        conn.close()
    text = clean_suggestion(result.answer)
    if not text:
        raise AicacheError("the model returned an empty message")
    return _Suggestion(text, result.episode_id, result.outcome, prepared.warnings)


def scrub_process_env() -> None:
    """Drop git's repository-local variables from this process: what aicache starts must not inherit them."""
    for name in LOCAL_GIT_ENV:
        os.environ.pop(name, None)


def _has_message(original: bytes, comment: str) -> bool:
    scissors = f"{comment} ------------------------ >8 ------------------------"
    for line in original.decode("utf-8", "replace").splitlines():
        if line == scissors:
            break
        if line.strip() and not line.startswith(comment):
            return True
    return False


def _write_suggestion(message_file: Path, original: bytes, text: str) -> None:
    # git's own layout starts with an empty line for the message, then its comments: the suggestion takes it
    separator = b"" if original.startswith(b"\n") or not original else b"\n"
    message_file.write_bytes(text.rstrip("\n").encode("utf-8") + b"\n" + separator + original)


def _write_comment(message_file: Path, original: bytes, comment_line: str) -> None:
    # keep git's empty first line for the user to type on; the reason joins git's comment lines below it
    rest = original[1:] if original.startswith(b"\n") else original
    message_file.write_bytes(b"\n" + comment_line.encode("utf-8") + b"\n" + rest)


def _prepare_commit_msg(args: list[str], on_note: NoteSink, started: float) -> HookRun:
    name = "prepare-commit-msg"
    if not args:
        raise UsageError("prepare-commit-msg: git passes the message file as the first argument")
    if len(args) > 1 and args[1]:
        return HookRun(name, "skipped", f"the commit has a message source ({args[1]})", 0.0)
    message_file = Path(args[0])
    original = message_file.read_bytes()  # unreadable: nothing can be written; run_hook reports it
    git_env = dict(os.environ)  # git's own variables name the commit being made: the diff is read with them
    comment = "#"
    try:
        repo = _repo(git_env)
        comment = repo.comment
        with contextlib.suppress(FileNotFoundError):
            repo.state_file.unlink()  # a suggestion from an earlier commit that never finished
        if _has_message(original, repo.comment):
            raise AicacheError("the message already has text (from an earlier hook); left as it is")
        settings = config.load()
        timeout = _timeout(settings)
        found = within(
            started + timeout - time.monotonic(),
            lambda: _suggest(repo, git_env, settings, started + timeout),
            f"no answer within {timeout:g} s (hook.timeout)",
        )
    except Exception as exc:  # the hook's edge: any failure becomes a comment line, never a blocked commit
        reason = describe(exc)
        _write_comment(message_file, original, f"{comment} aicache: no commit message suggested: {reason}")
        on_note(f"no commit message suggested: {reason}")
        return HookRun(name, "failed", reason, time.monotonic() - started, worker_alive=isinstance(exc, HookTimeout))
    for warning in found.warnings:
        on_note(warning)
    _write_suggestion(message_file, original, found.text)
    state = {"episode_id": found.episode_id, "suggestion": found.text, "ts": time.time()}
    repo.state_file.write_text(json.dumps(state), encoding="utf-8")
    return HookRun(name, "suggested", found.outcome, time.monotonic() - started, found.episode_id)


def kept_similarity(suggested: str, committed: str) -> float:
    """How much of the suggestion the committed message kept: 1.0 unchanged, 0.0 nothing in common."""
    import difflib

    def norm(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.strip().splitlines())[:10_000]

    return round(difflib.SequenceMatcher(None, norm(suggested), norm(committed), autojunk=False).ratio(), 3)


def _record_feedback(episode_id: int, feedback: dict[str, Any]) -> bool:
    from aicache import db

    conn = db.connect()
    try:
        with db.write_transaction(conn):
            cursor = conn.execute("UPDATE episodes SET feedback = ? WHERE id = ?", (json.dumps(feedback), episode_id))
        return cursor.rowcount == 1
    finally:
        conn.close()


def _post_commit(args: list[str], started: float) -> HookRun:
    """``args``: the pending-suggestion file and the commit, as the script claimed them; by default the
    repository's pending suggestion and HEAD (``aicache hook run post-commit`` by hand)."""
    name = "post-commit"
    git_env = dict(os.environ)
    pending = Path(args[0]) if args else _repo(git_env, with_comment=False).state_file
    commit = args[1] if len(args) > 1 else "HEAD"
    try:
        state = json.loads(pending.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return HookRun(name, "skipped", "no suggestion was made for this commit", 0.0)
    finally:
        with contextlib.suppress(FileNotFoundError):
            pending.unlink()  # one suggestion, one commit: never compared twice
    log = _git_out(["log", "-1", "--format=%H%n%B", commit, "--"], Path.cwd(), git_env)
    sha, _, message = log.partition("\n")
    scrub_process_env()
    timeout = _timeout(config.load())
    feedback = {"kept_similarity": kept_similarity(str(state["suggestion"]), message), "commit": sha}
    episode_id = int(state["episode_id"])
    recorded = within(
        started + timeout - time.monotonic(),
        lambda: _record_feedback(episode_id, feedback),
        f"the feedback was not recorded within {timeout:g} s (hook.timeout)",
    )
    if not recorded:
        raise AicacheError(f"episode {episode_id} of the suggestion is gone (forgotten?)")
    return HookRun(name, "recorded", json.dumps(feedback), time.monotonic() - started, episode_id)


def describe(exc: BaseException) -> str:
    """One line for a failure: our own errors say what happened; anything else names its type."""
    if isinstance(exc, AicacheError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return f"unexpected {type(exc).__name__}: {exc}"


def run_hook(hook: str, args: list[str], on_note: NoteSink) -> HookRun:
    """Run hook ``hook`` with git's ``args``. Never raises: a failure is reported through ``on_note``."""
    started = time.monotonic()
    try:
        if hook == "prepare-commit-msg":
            return _prepare_commit_msg(args, on_note, started)
        if hook == "post-commit":
            return _post_commit(args, started)
        raise UsageError(f"unknown hook {hook!r}; aicache runs {' and '.join(HOOK_NAMES)}")
    except Exception as exc:  # the hook's edge: whatever went wrong, git must carry on
        if os.environ.get("AICACHE_DEBUG") == "1":
            import traceback

            on_note(traceback.format_exc().rstrip())
        on_note(f"{hook}: {describe(exc)}")
        return HookRun(
            hook, "failed", describe(exc), time.monotonic() - started, worker_alive=isinstance(exc, HookTimeout)
        )


def detach_from_terminal() -> None:
    """Leave the terminal's session, so nothing this process starts can open /dev/tty and prompt."""
    if hasattr(os, "setsid"):
        # EPERM only when already a process-group leader; stdin is /dev/null then, which still stops prompts
        with contextlib.suppress(PermissionError):
            os.setsid()


def finish(run: HookRun) -> None:
    """End a hook process: exit 0 at once when a timed-out worker is still running (it must not hold git)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if run.worker_alive:
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """Process entry point of the installed scripts: ``python -c <ENTRY> ROOT HOOK ARGS...``.

    Like ``__main__``, an edge rather than library code; it lives here and not in ``aicache.cli`` because that
    package imports Typer, which costs more than the rest of a cache hit.
    """
    from aicache import output

    args = sys.argv[1:] if argv is None else argv
    detach_from_terminal()
    finish(run_hook(args[0] if args else "", args[1:], output.warn))
