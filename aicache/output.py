"""Everything the CLI shows: the answer on stdout, every note, warning and error on stderr.

stdout carries only the answer, so ``aicache ask ... > msg.txt`` and pipes get exactly the text. On a terminal
the answer is rendered as Markdown with rich (imported only then: it costs ~60 ms); in a pipe it is written raw,
as it streams. ``NO_COLOR`` (any value) turns colour off everywhere.

Text that came from a model or a user (answers, questions, errors from a server) is shown on a terminal only
through ``visible_controls``: an answer must not be able to clear the screen, retitle the window, hide text or
plant a link to another address. Only aicache's own styling reaches the terminal as escape sequences.

A reader of stdout that goes away (``aicache ask ... | head -1``) ends a command quietly with exit 141, as
SIGPIPE ends a Unix tool, but never stops an ask halfway: the answer has been paid for, so it is still stored
and its episode written (``AnswerWriter``), and ``reader_gone`` ends the process afterwards.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TextIO

from aicache.errors import ExitCode

JSON_VERSION = 2  # bump when a --json shape changes incompatibly (2: `cached` means served from the cache)

# Every C0 control but newline and tab, DEL, the C1 controls (0x9b is a one-byte CSI on some terminals) and the
# bidirectional overrides that reorder what is displayed: each is shown as a visible stand-in instead.
_VISIBLE: dict[int, int | str] = {c: 0x2400 + c for c in range(0x20) if c not in (0x09, 0x0A)}
_VISIBLE[0x7F] = 0x2421
_VISIBLE.update({c: f"<U+{c:04X}>" for c in (*range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))})
_C1 = re.compile("[\x80-\x9f]")

_quiet = False


def visible_controls(text: str) -> str:
    """``text`` made safe for a terminal: every control character shown as a symbol (ESC as U+241B, ...).

    CR LF line endings stay line endings; a bare CR, which could overwrite a line, is shown like the rest.
    """
    return text.replace("\r\n", "\n").translate(_VISIBLE)


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
    if sys.stderr.isatty():
        message = visible_controls(message)
    if colour(sys.stderr):
        message = f"\x1b[2m{message}\x1b[0m"
    print(message, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    if sys.stderr.isatty():
        message = visible_controls(message)
    prefix = "\x1b[33maicache: warning:\x1b[0m" if colour(sys.stderr) else "aicache: warning:"
    print(f"{prefix} {message}", file=sys.stderr, flush=True)


def error(message: str) -> None:
    if sys.stderr.isatty():
        message = visible_controls(message)
    prefix = "\x1b[31maicache: error:\x1b[0m" if colour(sys.stderr) else "aicache: error:"
    print(f"{prefix} {message}", file=sys.stderr, flush=True)


def emit_json(payload: dict[str, Any]) -> None:
    text = json.dumps({"version": JSON_VERSION, **payload}, ensure_ascii=False, default=str)
    # json escapes C0 controls but not C1 ones; escaping them too gives the same JSON value, safe on a terminal.
    print(_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text), flush=True)


def reader_gone() -> int:
    """Make ready to exit once stdout's reader has gone (a ``BrokenPipeError``); returns the exit code, 141.

    A Unix tool dies of SIGPIPE there, which shells report as 141. Python ignores SIGPIPE, so the write raises
    instead, and the flush at exit would fail again (a message and exit 120). So, as in Python's "Note on
    SIGPIPE", stdout and stderr (either may be the closed pipe: ``2>&1 | head``) now write to /dev/null.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    return ExitCode.PIPE_CLOSED


def emit_json_error(message: str, exit_code: int) -> None:
    """The ``--json`` shape of a failure, on stdout where the caller reads the JSON: ``error`` and ``exit_code``."""
    emit_json({"error": message, "exit_code": int(exit_code)})


class AnswerWriter:
    """Receives answer text as it streams and shows it: raw in pipes, Markdown on a terminal.

    Notes and warnings given to ``note`` and ``warn`` once the answer has begun wait until it is finished, so none
    lands inside it. When the reader of the stream goes away, the rest of the answer is still received (the ask
    goes on, to store and record it) but no longer written, and the ``BrokenPipeError`` is raised again when the
    writer closes.
    """

    def __init__(self, markdown: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.terminal = self.stream.isatty()
        self.markdown = self.terminal if markdown is None else markdown
        self.text: list[str] = []
        self._markdown: Any = None
        self._held_cr = False  # a CR at the end of a chunk, until the next one says whether it starts CR LF
        self._held: list[tuple[Callable[[str], None], str]] = []  # notes and warnings, until the answer ends
        self.reader_gone: BrokenPipeError | None = None

    def __enter__(self) -> AnswerWriter:
        if self.markdown:
            from aicache.markdown_stream import MarkdownStream

            self._markdown = MarkdownStream.for_stream(self.stream, no_color="NO_COLOR" in os.environ)
            self._markdown.__enter__()
        return self

    def write(self, text: str) -> None:
        if not text:
            return
        self.text.append(text)
        if self.reader_gone is not None:
            return
        try:
            self._show(text)
        except BrokenPipeError as exc:
            self.reader_gone = exc

    def _show(self, text: str) -> None:
        if self._markdown is not None:
            self._markdown.feed(text)
            return
        if self.terminal:
            text = ("\r" if self._held_cr else "") + text
            self._held_cr = text.endswith("\r")
            text = visible_controls(text[:-1] if self._held_cr else text)
        self.stream.write(text)
        self.stream.flush()

    def note(self, message: str) -> None:
        if self.text:
            self._held.append((note, message))
        else:
            note(message)

    def warn(self, message: str) -> None:
        if self.text:
            self._held.append((warn, message))
        else:
            warn(message)

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        try:
            if self._markdown is not None:
                self._markdown.__exit__(None, None, None)
            elif self.reader_gone is None:
                if self._held_cr:
                    self.stream.write(visible_controls("\r"))
                # A file or pipe ends with a newline, like every other CLI's output: an empty answer too, but not
                # the empty stdout of an ask that failed before any text came.
                unended = not self.text[-1].endswith("\n") if self.text else exc_type is None
                if unended:
                    self.stream.write("\n")
                self.stream.flush()
        except BrokenPipeError as exc:
            self.reader_gone = exc
        for show, message in self._held:
            show(message)
        self._held.clear()
        if self.reader_gone is not None and exc_type is None:
            raise self.reader_gone
