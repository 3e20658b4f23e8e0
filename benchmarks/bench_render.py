"""How long a large answer takes to show on a terminal, whole process, through a pseudo-terminal.

A local OpenAI-compatible server streams a Markdown answer (paragraphs, lists and fenced code, the shape of a
long model answer) in 100-character chunks; `aicache ask --no-cache` runs with stdout and stderr on a pty of
80 x 24, the way a user sees it, and the time from process start to its exit is measured while this script
drains the terminal, with the CPU time the process used (user + system, less sensitive to a busy machine than
wall time). A pipe run of the same answer (no rendering) is measured for comparison. Printed: the median of
--runs runs per size. The semantic tier and the warm helper are off, so the figures are rendering plus the
process's fixed start-up cost.

Usage: python benchmarks/bench_render.py [--runs 5] [--sizes 10,100,300] [--timeout 300]
The figures, and the old renderer's for comparison, are in the README's Benchmarks table.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

from _harness import aicache_exe, env_for, fresh_home, median
from tests.fakellm import FakeLLM, Reply


def answer_of(size: int) -> str:
    blocks: list[str] = []
    total = 0
    n = 0
    while total < size:
        if n % 7 == 3:
            block = f"```python\ndef step_{n}(x):\n    return x * {n}\n\nprint(step_{n}(2))\n```"
        elif n % 5 == 1:
            block = f"- item {n}: keep the change\n- item {n}: test it\n- item {n}: commit it"
        else:
            block = f"Paragraph {n} explains **one point** with `code` and words. " + "More words here. " * 20
        blocks.append(block)
        total += len(block) + 2
        n += 1
    return "\n\n".join(blocks)[:size].rstrip() + "\n"


def on_a_terminal(argv: list[str], env: dict[str, str], timeout: float) -> tuple[float | None, float]:
    """Seconds from start to exit with stdout/stderr on a pty (None past ``timeout``), and CPU seconds used."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal)
    os.close(terminal)
    shown = 0
    while True:
        if time.perf_counter() - started > timeout:
            proc.kill()
            proc.wait()
            os.close(controller)
            return None, 0.0
        ready, _, _ = select.select([controller], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        shown += len(chunk)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    os.close(controller)
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def in_a_pipe(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="10,100,300", help="answer sizes in KB")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a terminal run is given up")
    args = parser.parse_args()
    home = fresh_home("render")
    (home / "config.toml").write_text("[cache]\nsemantic = false\n")
    server = FakeLLM()
    server.start()
    env = env_for(
        home,
        AICACHE_HELPER="0",
        OPENAI_API_KEY="sk-bench-0123456789abcdef",
        OPENAI_BASE_URL=server.openai_url,
        TERM="xterm-256color",
    )
    argv = [*aicache_exe(), "ask", "--no-cache", "explain it at length"]
    print(f"{'size':>7}  {'terminal wall':>14}  {'terminal CPU':>13}  {'pipe wall':>10}  runs")
    try:
        for kb in (int(s) for s in args.sizes.split(",")):
            text = answer_of(kb * 1000)
            chunks = [text[i : i + 100] for i in range(0, len(text), 100)]
            terminal: list[float] = []
            cpu: list[float] = []
            gave_up = False
            for _ in range(args.runs):
                server.enqueue(Reply.text(text, chunks=chunks))
                seconds, used = on_a_terminal(argv, env, args.timeout)
                if seconds is None:
                    gave_up = True
                    break
                terminal.append(seconds)
                cpu.append(used)
            pipe: list[float] = []
            for _ in range(args.runs):
                server.enqueue(Reply.text(text, chunks=chunks))
                pipe.append(in_a_pipe(argv, env))
            wall = f"> {args.timeout:.0f} s" if gave_up else f"{median(terminal):.2f} s"
            used = "" if gave_up else f"{median(cpu):.2f} s"
            print(f"{kb:>4} KB  {wall:>14}  {used:>13}  {median(pipe):>8.2f} s  {args.runs}", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
