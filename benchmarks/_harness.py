"""Shared helpers for the whole-process benchmarks: run a command, time it, read its peak RSS."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


# Linux carries a process's peak RSS over exec, so a run started straight from this (larger) Python process would
# report at least this process's size. GNU time forks each run from its own small process instead.
GNU_TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def run_once(argv: list[str], env: dict[str, str], stdin: bytes = b"") -> Run:
    with tempfile.NamedTemporaryFile("r") as rss_file:
        if GNU_TIME is not None:
            argv = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *argv]
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
        reported = rss_file.read().strip().splitlines()
        rss_kb = int(reported[-1]) if GNU_TIME is not None and reported else usage.ru_maxrss
    return Run(wall, first_byte, rss_kb / 1024, proc.returncode, err)


def median(values: list[float]) -> float:
    return statistics.median(values)


def fresh_home(name: str) -> Path:
    """An empty AICACHE_HOME for this run, removed when the benchmark exits (it holds a ~90 MB model export)."""
    home = Path("/tmp") / f"aicache-bench-{name}-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def env_for(home: Path, **extra: str) -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE (set in some sandboxes and CI images) would make every run recompile every module
    # it imports: measure what a user's machine does, with bytecode caching on.
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"AICACHE_HOME": str(home), "HF_HUB_OFFLINE": "1", **extra})
    return env


# The warm helper (aicache.helper): each benchmark measures `ask` with one running and with none.
HELPER_MODES = ("warm helper", "no helper")


@contextmanager
def helper_mode(env: dict[str, str], mode: str) -> Iterator[dict[str, str]]:
    """The environment for ``mode``; with a warm helper, one is started first and stopped afterwards."""
    if mode == "no helper":
        yield {**env, "AICACHE_HELPER": "0"}
        return
    subprocess.run([*aicache_exe(), "helper", "start"], env=env, check=True, capture_output=True)
    try:
        yield env
    finally:
        subprocess.run([*aicache_exe(), "helper", "stop"], env=env, capture_output=True)


def helper_rss_mb(env: dict[str, str]) -> float:
    """The running helper's resident memory, read after the runs (it grows a little as it serves)."""
    out = subprocess.run([*aicache_exe(), "helper", "status", "--json"], env=env, capture_output=True, check=True)
    return float(json.loads(out.stdout)["helper"]["rss_mb"])


def runs_per_mode(argv: list[str], env: dict[str, str], runs: int) -> Iterator[tuple[str, list[Run], float | None]]:
    """``runs`` runs of ``argv`` in each helper mode: the mode, the runs, and the helper's memory (if one ran)."""
    for mode in HELPER_MODES:
        with helper_mode(env, mode) as mode_env:
            measured = [run_once(argv, mode_env) for _ in range(runs)]
            rss = helper_rss_mb(mode_env) if mode == "warm helper" else None
        yield mode, measured, rss


def wall_summary(runs: list[Run], helper_rss: float | None) -> str:
    walls = [r.wall_ms for r in runs]
    helper = f"; the helper itself: {helper_rss:.0f} MB" if helper_rss is not None else ""
    return (
        f"median {median(walls):.0f} ms (min {min(walls):.0f}, max {max(walls):.0f}), "
        f"peak RSS median {median([r.max_rss_mb for r in runs]):.0f} MB{helper}"
    )
