"""Shared helpers for the whole-process benchmarks: run a command, time it, read its peak RSS."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def aicache_exe() -> list[str]:
    script = Path(sys.executable).with_name("aicache")
    return [str(script)] if script.exists() else [sys.executable, "-m", "aicache"]


@dataclass(frozen=True)
class Run:
    wall_ms: float
    first_byte_ms: float | None
    max_rss_mb: float
    returncode: int
    stderr: bytes


def run_once(argv: list[str], env: dict[str, str], stdin: bytes = b"") -> Run:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdin and proc.stdout and proc.stderr
    proc.stdin.write(stdin)
    proc.stdin.close()
    first = proc.stdout.read(1)
    first_byte = (time.perf_counter() - started) * 1000 if first else None
    proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - started) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall, first_byte, usage.ru_maxrss / 1024, proc.returncode, err)


def median(values: list[float]) -> float:
    return statistics.median(values)


def fresh_home(name: str) -> Path:
    home = Path("/tmp") / f"aicache-bench-{name}-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return home


def env_for(home: Path, **extra: str) -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE (set in some sandboxes and CI images) would make every run recompile every module
    # it imports: measure what a user's machine does, with bytecode caching on.
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"AICACHE_HOME": str(home), "HF_HUB_OFFLINE": "1", **extra})
    return env
