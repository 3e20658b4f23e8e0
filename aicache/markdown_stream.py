"""Markdown rendered on a terminal as it streams, in time linear in the answer's length.

Re-rendering the whole answer as Markdown on every chunk costs time quadratic in its length, so long answers
never finished. Instead the text is cut into blocks at blank lines outside fenced code: a block is *settled*
once the next block begins, and is then rendered once and printed above a small live region. The live region
shows only the unfinished last block: as Markdown while it is short, and as its last lines of plain text while it
is too long to re-render, until it settles and is rendered once like the others. Markdown spans blocks only in
rare cases (a loose list is cut into lists that keep their numbering; a link reference defined in a later
paragraph), which is the price of showing a long answer at all.

Imported only when stdout is a terminal: it loads rich.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.text import Text

from aicache.output import visible_controls

if TYPE_CHECKING:
    from typing import TextIO

# The unfinished block is re-rendered as Markdown only up to this size; past it the live region shows its last
# lines as plain text, so a refresh costs at most a screenful whatever the block's length.
LIVE_MARKDOWN_CHARS = 4000
LIVE_MARKDOWN_LINES = 60
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


@dataclass
class RenderStats:
    """What was rendered: the length of each settled block (each rendered once) and of each live refresh."""

    settled: list[int] = field(default_factory=list)
    live_renders: int = 0
    live_chars_max: int = 0


class _Tail:
    """The live region's renderable: the unfinished block, read under the stream's lock at each refresh.

    Every print above the live region redraws it too; the last rendering is kept and reused while the block
    and the width are unchanged.
    """

    def __init__(self, owner: MarkdownStream) -> None:
        self.owner = owner
        self._last: tuple[tuple[str, bool, int, int], list[list[Segment]]] | None = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        max_lines = max(1, (options.height or console.height) - 1)
        text, as_markdown = self.owner.snapshot(max_lines * max(options.max_width, 1))
        key = (text, as_markdown, options.max_width, max_lines)
        if self._last is not None and self._last[0] == key:
            lines = self._last[1]
        else:
            lines = self._render(console, options, text, as_markdown)[-max_lines:]
            self._last = (key, lines)
        for number, line in enumerate(lines):
            if number:
                yield Segment.line()
            yield from line

    def _render(self, console: Console, options: ConsoleOptions, text: str, as_markdown: bool) -> list[list[Segment]]:
        stats = self.owner.stats
        stats.live_renders += 1
        stats.live_chars_max = max(stats.live_chars_max, len(text))
        if not text.strip():
            return []
        shown = visible_controls(text)
        renderable = Markdown(shown, hyperlinks=False) if as_markdown else Text(shown.rstrip("\n"), style="dim")
        return console.render_lines(renderable, options.update(height=None), pad=False)


class MarkdownStream:
    """Feed it text as it arrives with ``feed``; ``close`` prints what is left. Use as a context manager."""

    def __init__(self, console: Console, *, auto_refresh: bool = True) -> None:
        self.console = console
        self.stats = RenderStats()
        self._lock = threading.Lock()
        self._block: list[str] = []  # complete lines of the unfinished block
        self._block_chars = 0
        self._line: list[str] = []  # pieces of the unfinished last line
        self._line_chars = 0
        self._fence: str | None = None  # the opening fence while inside fenced code
        self._after_blank = False  # the block ended with a blank line outside fenced code
        self._printed = False
        self._live = Live(
            _Tail(self),
            console=console,
            auto_refresh=auto_refresh,
            refresh_per_second=12,
            transient=True,  # the last block is printed once, rendered in full, when the live region goes
            redirect_stdout=False,
            redirect_stderr=False,
            vertical_overflow="crop",
        )

    @classmethod
    def for_stream(cls, stream: TextIO, no_color: bool) -> MarkdownStream:
        return cls(Console(file=stream, no_color=no_color))

    def __enter__(self) -> MarkdownStream:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def feed(self, text: str) -> None:
        settled: list[str] = []
        with self._lock:
            start = 0
            while (end := text.find("\n", start)) != -1:
                self._line.append(text[start : end + 1])
                line = "".join(self._line)
                self._line, self._line_chars = [], 0
                block = self._take_line(line)
                if block is not None:
                    settled.append(block)
                start = end + 1
            if start < len(text):
                self._line.append(text[start:])
                self._line_chars += len(text) - start
        for block in settled:
            self._print(block)

    def close(self) -> None:
        with self._lock:
            line = "".join(self._line)
            self._line, self._line_chars = [], 0
            settled = self._take_line(line) if line else None
            last = self._cut()
        if settled is not None:
            self._print(settled)
        self._live.stop()
        if last.strip():
            self._print(last)

    def refresh(self) -> None:
        self._live.refresh()

    def snapshot(self, plain_chars: int) -> tuple[str, bool]:
        """The unfinished block: whole, to render as Markdown, or only its last ``plain_chars`` characters."""
        with self._lock:
            total = self._block_chars + self._line_chars
            if total <= LIVE_MARKDOWN_CHARS and len(self._block) <= LIVE_MARKDOWN_LINES:
                return "".join(self._block) + "".join(self._line), True
            pieces: list[str] = []
            kept = 0
            for piece in reversed(self._line):
                pieces.append(piece)
                kept += len(piece)
                if kept >= plain_chars:
                    break
            for line in reversed(self._block):
                if kept >= plain_chars:
                    break
                pieces.append(line)
                kept += len(line)
            return "".join(reversed(pieces))[-plain_chars:], False

    def _take_line(self, line: str) -> str | None:
        """Add one line to the unfinished block; return the block it settles, if it starts a new one."""
        stripped = line.strip()
        if self._fence is not None:
            self._add(line)
            if len(stripped) >= len(self._fence) and set(stripped) == {self._fence[0]}:
                self._fence = None
            return None
        if not stripped:
            if self._block:
                self._add(line)
                self._after_blank = True
            return None
        # An indented line after a blank one continues the block (a list item's paragraph, indented code).
        settled = self._cut() if self._after_blank and line[0] not in " \t" else None
        self._after_blank = False
        if match := _FENCE.match(line):
            self._fence = match.group(1)
        self._add(line)
        return settled

    def _add(self, line: str) -> None:
        self._block.append(line)
        self._block_chars += len(line)

    def _cut(self) -> str:
        block = "".join(self._block)
        self._block, self._block_chars, self._after_blank = [], 0, False
        return block

    def _print(self, block: str) -> None:
        rendered = Markdown(visible_controls(block), hyperlinks=False)
        # The blank line rich puts between the blocks of one document; one print, so one redraw of the live region.
        self.console.print(Group(Text(), rendered) if self._printed else rendered)
        self.stats.settled.append(len(block))
        self._printed = True
