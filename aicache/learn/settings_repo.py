"""Where learned settings live: files in a git repository, merged into the configuration from its working tree.

Two kinds of repository hold them:

- **aicache's own** (the default): ``<config dir>/learned/``, a git repository aicache creates on the first
  proposal, with ``learned.toml`` (and any model artefact files) at its root and ``main`` as the live branch.
  aicache owns its working tree: ``proposals apply`` merges into ``main`` and checks the result out there.
- **the user's project** (``--repo``): ``.aicache/`` at the top of the git repository the command runs in.
  Proposals are branches of the user's repository, based on its HEAD; aicache never moves the user's HEAD,
  index or working tree by itself (``apply`` writes files into ``.aicache/`` only when that folder is clean).

``learned_settings`` is on every command's path (``config.load``), so it reads ``learned.toml`` from the working
tree as a plain file: no git process, no GitPython import, and ``tomllib`` only when a file exists.
Learned files may set only the sections learning owns (``LEARNABLE``): a cloned repository's ``.aicache/``
must not be able to redirect a provider or its key. A refitted decision model travels with its learned.toml:
``decision.directory`` there must be a folder beside the file, and is read relative to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicache import paths
from aicache.errors import ConfigError

LEARNED_FILE = "learned.toml"
PROJECT_DIR = ".aicache"
LIVE_BRANCH = "main"
#: the top-level sections a learned.toml may set (the hit decision, the index, the cache, learning itself);
#: anything else (providers, keys, the judge, redaction) is refused, not ignored
LEARNABLE = ("cache", "decision", "index", "learn")

DEFAULT = "default"
PROJECT = "project"


@dataclass(frozen=True)
class SettingsRepo:
    """A git repository holding learned settings: its work tree ``root`` and the folder ``prefix`` inside it."""

    root: Path
    prefix: str  # "" for aicache's own repository, ".aicache" in a project
    kind: str  # DEFAULT | PROJECT

    @property
    def settings_dir(self) -> Path:
        return self.root / self.prefix if self.prefix else self.root

    def tree_path(self, name: str) -> str:
        """Where file ``name`` of the learned settings sits in the repository's tree."""
        return f"{self.prefix}/{name}" if self.prefix else name


def default_dir() -> Path:
    return paths.config_dir() / "learned"


def default_repo() -> SettingsRepo:
    """aicache's own settings repository (it may not exist yet: the first proposal creates it)."""
    return SettingsRepo(root=default_dir(), prefix="", kind=DEFAULT)


def find_project_root(start: Path | None = None) -> Path | None:
    """The top of the git work tree holding ``start`` (default: the working directory), found without git.

    The nearest directory with a ``.git`` entry (a directory, or the file of a linked worktree or submodule),
    which is where git itself stops. Plain ``os.path`` calls: this runs in every command's ``config.load``.
    """
    try:
        here = os.path.abspath(start) if start is not None else os.getcwd()
    except OSError:  # the working directory was deleted
        return None
    while True:
        if os.path.lexists(os.path.join(here, ".git")):
            return Path(here)
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def project_repo(start: Path | None = None) -> SettingsRepo:
    """``.aicache/`` in the git repository holding ``start`` (``--repo``)."""
    root = find_project_root(start)
    if root is None:
        raise ConfigError(f"--repo: {(start or Path.cwd())} is not inside a git repository")
    return SettingsRepo(root=root, prefix=PROJECT_DIR, kind=PROJECT)


def repo_at(settings_dir: Path, kind: str) -> SettingsRepo:
    """The repository a stored proposal names (``settings_dir`` as ``SettingsRepo.settings_dir`` gave it)."""
    if kind == PROJECT:
        return SettingsRepo(root=settings_dir.parent, prefix=settings_dir.name, kind=PROJECT)
    return SettingsRepo(root=settings_dir, prefix="", kind=DEFAULT)


def live_files(start: Path | None = None) -> list[Path]:
    """The live ``learned.toml`` files, lowest precedence first: aicache's own, then the project's."""
    found = [default_dir() / LEARNED_FILE]
    root = find_project_root(start)
    if root is not None:
        found.append(root / PROJECT_DIR / LEARNED_FILE)
    return [path for path in found if os.path.isfile(path)]


def read_learned(path: Path) -> dict[str, Any]:
    """One learned.toml, checked to set only learnable sections (empty when there is none yet)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read learned settings {path}: {exc}") from None
    return parse_learned(raw, str(path))


def parse_learned(raw: bytes, where: str) -> dict[str, Any]:
    """The settings in a learned.toml's bytes; ``ConfigError`` when they are not TOML or set other sections."""
    import tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read learned settings {where}: {exc}") from None
    for key, value in data.items():
        if key not in LEARNABLE or not isinstance(value, dict):
            raise ConfigError(
                f"learned settings {where} set {key!r}: only the sections {', '.join(LEARNABLE)} may be learned"
            )
    directory = data.get("decision", {}).get("directory")
    if directory is not None and not _inside(str(directory)):
        raise ConfigError(
            f"learned settings {where} set decision.directory {directory!r}: it must name a folder beside "
            "learned.toml (a relative path without '..')"
        )
    return data


def _inside(relative: str) -> bool:
    parts = relative.replace("\\", "/").split("/")
    return bool(relative) and not os.path.isabs(relative) and ".." not in parts


def _resolved(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``decision.directory`` of a learned file (a refitted model it carries) as a path beside the file."""
    directory = data.get("decision", {}).get("directory")
    if directory is None:
        return data
    return _merge(data, {"decision": {"directory": str(folder / str(directory))}})


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class LearnedFile:
    """One live learned.toml and the settings it holds (``decision.directory`` resolved beside it)."""

    path: Path
    kind: str  # DEFAULT | PROJECT
    data: dict[str, Any]

    @property
    def source(self) -> str:
        """How ``config show`` names a value from this file."""
        return "learned" if self.kind == DEFAULT else "learned (project)"


def learned_files() -> list[LearnedFile]:
    """The live learned files with their settings, lowest precedence first: aicache's own, then the project's."""
    own = default_dir() / LEARNED_FILE
    return [
        LearnedFile(path, DEFAULT if path == own else PROJECT, _resolved(read_learned(path), path.parent))
        for path in live_files()
    ]


def learned_settings() -> dict[str, Any]:
    """The live learned settings (aicache's own overlaid by the current project's), ``{}`` when there are none.

    ``config.load`` layers them above the built-in defaults and below the user's config.toml and environment:
    what the user wrote always wins over what was learned.
    """
    merged: dict[str, Any] = {}
    for learned in learned_files():
        merged = _merge(merged, learned.data)
    return merged
