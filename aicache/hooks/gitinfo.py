"""Which git repository and commit the user is in, read from files rather than by running git.

Every episode records the repository root and HEAD. Running ``git`` costs a process (5-10 ms) and GitPython an
import; reading ``.git/HEAD`` costs microseconds, which matters on the exact-hit path.
"""

from __future__ import annotations

from pathlib import Path


def _git_dir(worktree: Path) -> Path | None:
    dot_git = worktree / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():  # worktrees and submodules: "gitdir: <path>"
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            target = Path(text[len("gitdir:") :].strip())
            return target if target.is_absolute() else (worktree / target).resolve()
    return None


def _resolve_ref(git_dir: Path, ref: str) -> str | None:
    common = git_dir
    commondir = git_dir / "commondir"
    if commondir.is_file():
        common = (git_dir / commondir.read_text().strip()).resolve()
    for base in (git_dir, common):
        loose = base / ref
        if loose.is_file():
            return loose.read_text().strip()
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8", errors="replace").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    return None


def repo_and_head(start: Path) -> tuple[str | None, str | None]:
    """Return (repository root, HEAD commit) for ``start``, or (None, None) outside a repository."""
    try:
        for folder in (start, *start.parents):
            git_dir = _git_dir(folder)
            if git_dir is None:
                continue
            head = (git_dir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
            if head.startswith("ref:"):
                return str(folder), _resolve_ref(git_dir, head[4:].strip())
            return str(folder), head or None
    except OSError:
        pass  # an unreadable repository is just not recorded; the ask itself must not fail over it
    return None, None
