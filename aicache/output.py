"""Everything the CLI shows: the answer on stdout, every note, warning and error on stderr.

stdout carries only the answer, so ``aicache ask ... > msg.txt`` and pipes get exactly the text. On a terminal
the answer is rendered as Markdown with rich (imported only then: it costs ~60 ms); in a pipe it is written raw,
as it streams. ``NO_COLOR`` (any value) turns colour off everywhere.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

JSON_VERSION = 2  # bump when a --json shape changes incompatibly (2: `cached` means served from the cache)

_quiet = False


def set_quiet(quiet: bool) -> None:
    """``--quiet``: notes are not shown; warnings and errors still are."""
    global _quiet
    _quiet = quiet


def colour(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def note(message: str) -> None:
    """A status line on stderr, dimmed on a terminal; hidden by ``--quiet``."""
    if _quiet:
        return
    if colour(sys.stderr):
        message = f"\x1b[2m{message}\x1b[0m"
    print(message, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    prefix = "\x1b[33maicache: warning:\x1b[0m" if colour(sys.stderr) else "aicache: warning:"
    print(f"{prefix} {message}", file=sys.stderr, flush=True)


def error(message: str) -> None:
    prefix = "\x1b[31maicache: error:\x1b[0m" if colour(sys.stderr) else "aicache: error:"
    print(f"{prefix} {message}", file=sys.stderr, flush=True)


def emit_json(payload: dict[str, Any]) -> None:
    print(json.dumps({"version": JSON_VERSION, **payload}, ensure_ascii=False, default=str), flush=True)


def emit_json_error(message: str, exit_code: int) -> None:
    """The ``--json`` shape of a failure, on stdout where the caller reads the JSON: ``error`` and ``exit_code``."""
    emit_json({"error": message, "exit_code": int(exit_code)})


class AnswerWriter:
    """Receives answer text as it streams and shows it: raw in pipes, Markdown on a terminal."""

    def __init__(self, markdown: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.markdown = self.stream.isatty() if markdown is None else markdown
        self.text: list[str] = []
        self._live: Any = None

    def __enter__(self) -> AnswerWriter:
        if self.markdown:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, no_color="NO_COLOR" in os.environ)
            self._live = Live(console=console, refresh_per_second=12, vertical_overflow="visible")
            self._live.__enter__()
        return self

    def write(self, text: str) -> None:
        self.text.append(text)
        if self._live is not None:
            from rich.markdown import Markdown

            self._live.update(Markdown("".join(self.text)))
        else:
            self.stream.write(text)
            self.stream.flush()

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
        elif self.text and not self.text[-1].endswith("\n"):
            self.stream.write("\n")  # a file or pipe ends with a newline, like every other CLI's output
            self.stream.flush()
