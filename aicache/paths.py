"""Where aicache keeps its files.

One override: ``AICACHE_HOME`` puts everything (config, keys, data) under one directory; tests point it at
``tmp_path``. Without it, platformdirs picks the per-user config and data directories. platformdirs is imported
only in that case because the exact-hit path is measured in milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

from aicache.errors import ConfigError

APP = "aicache"


def _home() -> Path | None:
    value = os.environ.get("AICACHE_HOME")
    if not value:
        return None
    # Absolute as soon as read: a relative home would name another directory after any change of directory.
    home = Path(os.path.abspath(os.path.expanduser(value)))
    if home.exists() and not home.is_dir():
        # Checked here, where every command reads it, so each fails alike (a missing home is created later).
        raise ConfigError(f"AICACHE_HOME={value} is not a directory")
    return home


def config_dir() -> Path:
    home = _home()
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_config_dir(APP))


def data_dir() -> Path:
    home = _home()
    if home is not None:
        return home / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP))


def config_file() -> Path:
    return config_dir() / "config.toml"


def keys_file() -> Path:
    return config_dir() / "keys.json"


def db_path() -> Path:
    return data_dir() / "aicache.db"


def index_path() -> Path:
    return data_dir() / "index.hnsw"


def models_dir() -> Path:
    return data_dir() / "models"


PACKAGE_DATA = Path(__file__).resolve().parent / "data"
"""Files shipped inside the package (word lists, templates, patterns). A plain path, not importlib.resources:
aicache is never imported from a zip, and importlib.resources costs ~10 ms of every run to import."""


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if missing; our files hold prompts and keys."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable: after a crash the file is the old or the new one, not missing."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
