"""Install, uninstall and report the hook scripts (see the package docstring)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aicache import files
from aicache.errors import AicacheError, UsageError
from aicache.hooks.git import git_out, run_git, scrubbed_env

HOOK_NAMES = ("prepare-commit-msg", "post-commit")
MARKER = "# aicache-hook v1"
CHAINED_SUFFIX = ".aicache-chained"
MANIFEST_NAME = ".aicache-hooks.json"
ENTRY = "import sys; sys.path.insert(0, sys.argv.pop(1)); from aicache.hooks import main; main()"


# -- where the hooks are ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HooksDir:
    path: Path
    scope: str  # "repository", "global" or "system": whose config chose this directory
    hooks_path_setting: str | None  # core.hooksPath as configured, with its scope ("local: .githooks")


def _hooks_path_setting(cwd: Path, env: Mapping[str, str]) -> str | None:
    proc = run_git(["config", "--show-scope", "--get", "core.hooksPath"], cwd, env)
    return proc.stdout.strip().replace("\t", ": ", 1) if proc.returncode == 0 else None


def locate(cwd: Path) -> HooksDir:
    """The hooks directory git uses for the repository at ``cwd``."""
    env = scrubbed_env()
    proc = run_git(["rev-parse", "--git-path", "hooks"], cwd, env)
    if proc.returncode != 0:
        raise UsageError("not inside a git repository: run this in one, or use --global DIR")
    path = Path(os.path.normpath(cwd / proc.stdout.rstrip("\n")))
    setting = _hooks_path_setting(cwd, env)
    # A core.hooksPath from the global (or system) config serves every repository: say so, not "repository".
    scope = setting.split(":", 1)[0] if setting and setting.startswith(("global:", "system:")) else "repository"
    return HooksDir(path, scope, setting)


def _global_hooks_path() -> str | None:
    proc = run_git(["config", "--global", "--get", "core.hooksPath"], Path.home(), scrubbed_env())
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


def package_root() -> str:
    """The directory ``import aicache`` was resolved from, baked into the scripts."""
    return str(Path(__file__).resolve().parents[2])


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
    git_out(["config", "--global", "core.hooksPath", str(hooks.path)], Path.home(), scrubbed_env())
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
    files.write_atomic(directory / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n", mode=0o644)
    return Report(directory, hooks.scope, tuple(actions), tuple(warnings))


def _install_one(directory: Path, name: str, python: str, manifest: dict[str, Any]) -> str:
    target, chained = directory / name, directory / (name + CHAINED_SUFFIX)
    if is_ours(target):
        files.write_atomic(target, script(name, python, package_root()), mode=0o755)
        return f"updated {name}" + (f" (still runs {chained.name} first)" if os.path.lexists(chained) else "")
    entry: dict[str, Any] = {"chained": None, "installed_at": time.time()}
    action = f"installed {name}"
    if os.path.lexists(target):
        entry["chained"] = {"name": chained.name, **_fingerprint(target)}
        os.rename(target, chained)  # a rename: bytes, mode and times stay exactly as they were
        action += f"; your existing hook is kept as {chained.name} and runs first"
    files.write_atomic(target, script(name, python, package_root()), mode=0o755)
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
            git_out(["config", "--global", "--unset", "core.hooksPath"], Path.home(), scrubbed_env())
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
