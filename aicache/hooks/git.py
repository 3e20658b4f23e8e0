"""Running git from aicache: never with the user's repository-local variables, never waiting on a prompt."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from aicache.errors import AicacheError

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


# -- running git-----------------------------------------------------------------------------------------


def scrubbed_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without git's repository-local variables."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in LOCAL_GIT_ENV}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def run_git(args: list[str], cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
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


def git_out(args: list[str], cwd: Path, env: Mapping[str, str]) -> str:
    proc = run_git(args, cwd, env)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise AicacheError(f"git {' '.join(args)} failed: {lines[-1] if lines else proc.returncode}")
    return proc.stdout.rstrip("\n")
