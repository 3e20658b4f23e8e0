"""What aicache's git hooks add to `git commit`, whole process: on a cache hit, and on a miss.

A real repository in /tmp with aicache's hooks installed, a local OpenAI-compatible server as the provider, and
`GIT_EDITOR=true` (git takes the suggestion as it is). Each timed run is one `git commit` from start to exit;
between runs the commit is undone with `git reset --soft HEAD~1`, which leaves the same diff staged.

* hit: the same staged diff every run (primed once), so every suggestion is an exact cache hit;
* miss: a different staged diff every run, answered by the server after a fixed delay (default 300 ms);
* baseline: the same `git commit` with an empty hooks directory (`-c core.hooksPath=<empty dir>`).

Printed: the median of each, and the added time (median with hooks - median without). post-commit does its
work in the background (git ignores its result), so a commit does not wait for it; its own duration is printed
too. Python writes bytecode caches here, as an installed package has them (PYTHONDONTWRITEBYTECODE is dropped).

Usage: python benchmarks/bench_hook.py [--runs 15] [--delay 0.3]
Target (git hooks issue): <= 250 ms added on a cache hit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from _harness import ROOT, env_for, fresh_home, median, run_once
from aicache.hooks import install
from tests.fakellm import FakeLLM


def _git(repo: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def _environment(home: Path, server: FakeLLM) -> dict[str, str]:
    (home / "user").mkdir()
    (home / "config.toml").write_text(
        "[cache]\nsemantic = false\n[providers.openai]\nsend_key_to_custom_base_url = true\n"
    )
    env = {k: v for k, v in env_for(home).items() if not k.startswith("GIT_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        HOME=str(home / "user"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_EDITOR="true",
        PYTHONPATH=str(ROOT),
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
        OPENAI_BASE_URL=server.openai_url,
        OPENAI_API_KEY="sk-bench-0000000000000000",
    )
    return env


def _repo(home: Path, env: dict[str, str]) -> Path:
    repo = home / "repo"
    _git(home, env, "init", "-q", "-b", "main", str(repo))
    (repo / "README.md").write_text("# bench\n")
    _git(repo, env, "add", "README.md")
    _git(repo, env, "commit", "-q", "-m", "Initial commit")
    install.install(install.locate(repo), python=sys.executable)
    return repo


def _wait_for_background(repo: Path) -> None:
    """Let the previous post-commit finish, so it does not share the CPU with the next timed commit."""
    deadline = time.monotonic() + 10
    while list((repo / ".git").glob("aicache-suggestion*.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)


def _commit_ms(repo: Path, env: dict[str, str], content: str, *git_options: str) -> float:
    """One timed ``git commit`` of ``content``; the commit is then undone, leaving the diff staged."""
    (repo / "change.txt").write_text(content)
    _git(repo, env, "add", "change.txt")
    run = run_once(["git", *git_options, "commit", "-q"], env)  # in the repository: main() chdirs there
    assert run.returncode == 0, run.stderr
    _git(repo, env, "reset", "-q", "--soft", "HEAD~1")
    _wait_for_background(repo)
    return run.wall_ms


def _post_commit_ms(repo: Path, env: dict[str, str], runs: int) -> float:
    """The background post-commit on its own: the entry the script runs, on a claimed suggestion."""
    times = []
    for _ in range(runs):
        pending = repo / ".git" / "bench-pending.json"
        pending.write_text('{"episode_id": 1, "suggestion": "Update change.txt", "ts": 0}')
        argv = [sys.executable, "-c", install.ENTRY, install.package_root(), "post-commit", str(pending), "HEAD"]
        started = time.perf_counter()
        subprocess.run(argv, cwd=repo, env=env, check=True, capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--delay", type=float, default=0.3)
    args = parser.parse_args()
    home = fresh_home("hook")
    server = FakeLLM(delay=args.delay).start()
    env = _environment(home, server)
    repo = _repo(home, env)
    no_hooks = home / "no-hooks"
    no_hooks.mkdir()
    os.chdir(repo)

    _commit_ms(repo, env, "the same change\n")  # prime: a miss that stores the suggestion
    hit = [_commit_ms(repo, env, "the same change\n") for _ in range(args.runs)]
    miss = [_commit_ms(repo, env, f"change {uuid.uuid4()}\n") for _ in range(args.runs)]
    # without hooks the editor types the message (a shell builtin, as `true` is for the runs with hooks)
    typed = {**env, "GIT_EDITOR": "printf 'Update change.txt\\n' >"}
    bare = [
        _commit_ms(repo, typed, f"change {uuid.uuid4()}\n", "-c", f"core.hooksPath={no_hooks}")
        for _ in range(args.runs)
    ]
    post = _post_commit_ms(repo, env, args.runs)
    server.stop()
    requests = len(server.requests)
    assert requests == 1 + args.runs, f"expected {1 + args.runs} provider calls, saw {requests}"

    base, delay_ms = median(bare), args.delay * 1000
    hit_ms, miss_ms = median(hit), median(miss)
    print(f"git commit, whole process, {args.runs} runs each (median):")
    print(f"  without hooks:                  {base:6.0f} ms")
    print(f"  with aicache, cache hit:        {hit_ms:6.0f} ms   added {hit_ms - base:+.0f} ms (target <= 250)")
    print(
        f"  with aicache, miss, server {delay_ms:.0f} ms: {miss_ms:6.0f} ms   added {miss_ms - base:+.0f} ms, "
        f"{miss_ms - base - delay_ms:+.0f} ms beyond the server's delay"
    )
    print(f"  post-commit, in the background: {post:6.0f} ms (git commit does not wait for it)")


if __name__ == "__main__":
    main()
