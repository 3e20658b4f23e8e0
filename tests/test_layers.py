"""Dependencies point downwards: cli -> flow -> cache/semantic/providers -> config/db/paths/errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Each low module, imported alone in a fresh interpreter, must not pull in a layer above it.
LOWER_THAN = {
    "aicache.config": ("aicache.providers", "aicache.cache", "aicache.flow", "aicache.cli"),
    "aicache.cache": ("aicache.providers", "aicache.flow", "aicache.cli"),
    "aicache.request": ("aicache.providers", "aicache.flow", "aicache.cli"),
}


@pytest.mark.parametrize("module", sorted(LOWER_THAN))
def test_low_modules_import_nothing_above_them(module: str) -> None:
    script = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, capture_output=True, check=True
    ).stdout.decode()
    above = [name for name in loaded.split() if name.startswith(LOWER_THAN[module])]
    assert above == [], f"{module} imports {above}"
