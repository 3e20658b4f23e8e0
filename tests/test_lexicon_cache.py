"""The verifier's built tables are cached in a pickle that a new version of the code never reads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

LOAD = "from aicache.semantic.lexicon import load_lexicon; load_lexicon()"


def cached_tables(install: Path, home: Path) -> list[str]:
    """Load the word lists with the aicache installed at ``install``; the pickles left in the cache."""
    env = {"PYTHONPATH": str(install), "AICACHE_HOME": str(home), "PATH": os.environ.get("PATH", "")}
    subprocess.run([sys.executable, "-c", LOAD], cwd=install, env=env, check=True, capture_output=True)
    return sorted(p.name for p in (home / "data" / "cache").glob("lexicon-*.pickle"))


def test_new_code_or_a_new_version_never_reuses_cached_tables(tmp_path: Path) -> None:
    install = tmp_path / "site"
    shutil.copytree(ROOT / "aicache", install / "aicache", ignore=shutil.ignore_patterns("__pycache__"))
    home = tmp_path / "home"
    first = cached_tables(install, home)
    assert len(first) == 1
    assert cached_tables(install, home) == first  # same code, same word lists: the cache is read back

    # An upgrade that changes how tables are built but keeps every word list (same names, sizes and times).
    module = install / "aicache" / "semantic" / "lexicon.py"
    source = module.read_text(encoding="utf-8")
    module.write_text(source.replace("def stem(word: str) -> str:", "def stem(word: str) -> str:  # new"))
    second = cached_tables(install, home)
    assert len(second) == 1 and second != first

    package = install / "aicache" / "__init__.py"
    package.write_text(package.read_text(encoding="utf-8").replace('__version__ = "', '__version__ = "9.'))
    third = cached_tables(install, home)
    assert len(third) == 1 and third not in (first, second)
