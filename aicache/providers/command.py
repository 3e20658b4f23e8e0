"""Wrap an AI command-line tool (``claude -p``, ``gemini``, ``llm``) as a provider.

Settings (``providers.command``): ``argv``, the command as a list of strings, where ``{model}`` in any argument
becomes the requested model; ``prompt_via``, ``"stdin"`` (the prompt is written to the tool's standard input)
or ``"arg"`` (appended as the last argument; a prompt starting with ``-`` may then be read as an option, so
put ``"--"`` at the end of ``argv`` if the tool accepts it); ``timeout``, seconds for the whole run.

Prompt rule: the system prompt, if any, comes first; a conversation of one user message is then its text as is
(what ``claude -p`` expects), and a longer one is written as turns labelled ``User:`` and ``Assistant:``; the
parts are separated by a blank line.

The tool's stdout is the answer, decoded as UTF-8 as it arrives (invalid bytes become U+FFFD) and handed to
``on_text`` piece by piece. It is complete when the tool exits with status 0 having printed something. A
non-zero exit is a ``ProviderError`` with the status and the last line of its stderr. The tool runs in its own
process group, so a timeout, Ctrl-C or any other failure here kills it and whatever it started; Ctrl-C is then
re-raised unchanged. POSIX only (process groups).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aicache.errors import ConfigError, ProviderError
from aicache.providers.base import Completion, Message, ProviderRequest, TextSink
from aicache.providers.http import scrub

HOW_TO_SET = 'aicache config set providers.command.argv \'["claude", "-p"]\''
#: seconds a tool gets to exit after SIGTERM before its process group is killed
KILL_GRACE = 1.0
#: how much of the tool's stderr is kept to quote its last line
STDERR_TAIL = 64 * 1024


@dataclass(frozen=True)
class CommandSpec:
    """Validated ``providers.command`` settings."""

    argv: tuple[str, ...]
    prompt_via: str
    timeout: float

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> CommandSpec:
        argv = config.get("argv") or []
        if not isinstance(argv, list | tuple) or not all(isinstance(a, str) for a in argv):
            raise ConfigError(f"providers.command.argv must be a list of strings; set it with: {HOW_TO_SET}")
        if not argv or not argv[0].strip():
            raise ConfigError(f"the command provider has no command to run; set one with: {HOW_TO_SET}")
        prompt_via = config.get("prompt_via", "stdin")
        if prompt_via not in ("stdin", "arg"):
            raise ConfigError(f"providers.command.prompt_via must be 'stdin' or 'arg', not {prompt_via!r}")
        timeout = config.get("timeout", 300)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError(f"providers.command.timeout must be a positive number of seconds, not {timeout!r}")
        return cls(tuple(argv), prompt_via, float(timeout))


class CommandProvider:
    """Runs the configured tool once per request. Settings are checked when it is used, not when built."""

    name = "command"

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)

    def complete(self, request: ProviderRequest, on_text: TextSink) -> Completion:
        spec = CommandSpec.parse(self.config)
        prompt = flatten_prompt(request.system, request.messages)
        argv = [arg.replace("{model}", request.model) for arg in spec.argv]
        if spec.prompt_via == "arg":
            argv.append(prompt)
        text = _run(argv, prompt if spec.prompt_via == "stdin" else None, spec.timeout, on_text, request.stream)
        return Completion(text=text, finish_reason="exit_0", model=request.model)


def flatten_prompt(system: str | None, messages: Sequence[Message]) -> str:
    """One text for a tool that takes one prompt (the rule is in the module docstring)."""
    parts = [system] if system else []
    if len(messages) == 1 and messages[0].role == "user":
        parts.append(messages[0].content)
    else:
        parts += [f"{m.role.capitalize()}: {m.content}" for m in messages]
    return "\n\n".join(parts)


def _run(argv: list[str], stdin_text: str | None, timeout: float, on_text: TextSink, stream: bool) -> str:
    """Run the tool; return its whole stdout when it succeeded, else raise ProviderError."""
    name = Path(argv[0]).name
    proc = _start(argv, stdin_text is not None)
    stderr = _Tail()
    helpers = [threading.Thread(target=stderr.drain, args=(proc.stderr,), daemon=True)]
    if stdin_text is not None:
        helpers.append(threading.Thread(target=_feed, args=(proc.stdin, stdin_text), daemon=True))
    for helper in helpers:
        helper.start()
    deadline = time.monotonic() + timeout
    pieces: list[str] = []  # every piece read; when streaming, also every piece shown
    try:
        status = _wait_for_exit(proc, deadline, pieces, on_text if stream else None)
    except _Timeout:
        _kill_group(proc)
        shown = "".join(pieces) if stream else ""
        raise ProviderError(f"command {name} timed out after {timeout:g} s and was stopped", partial=shown) from None
    except BaseException:
        _kill_group(proc)  # Ctrl-C, or on_text failing (closed stdout): stop the tool and all it started
        raise
    finally:
        for helper in helpers:
            helper.join(timeout=KILL_GRACE)  # a grandchild may still hold a pipe; never hang on it
        if proc.stdout is not None:
            proc.stdout.close()
    text = "".join(pieces)
    _check_exit(name, status, text, stderr.last_line(), shown=text if stream else "")
    if not stream:
        on_text(text)
    return text


class _Timeout(Exception):
    """The overall timeout passed while the tool was still writing."""


def _start(argv: list[str], with_stdin: bool) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Own process group: Ctrl-C at the terminal reaches only us, and we stop the whole tool ourselves.
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ConfigError(f"command not found: {argv[0]!r}; set providers.command.argv, e.g. {HOW_TO_SET}") from None
    except OSError as exc:
        raise ConfigError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None


def _wait_for_exit(proc: subprocess.Popen[bytes], deadline: float, pieces: list[str], on_text: TextSink | None) -> int:
    """Read all of stdout, then wait for the exit status; raise _Timeout at the deadline."""
    _read_stdout(proc, deadline, pieces, on_text)
    try:
        return proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise _Timeout from None


def _read_stdout(proc: subprocess.Popen[bytes], deadline: float, pieces: list[str], on_text: TextSink | None) -> None:
    """Read stdout to its end into ``pieces``, passing each on as it comes; raise _Timeout at the deadline."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout
            if not selector.select(remaining):
                continue
            data = os.read(fd, 65536)
            piece = decoder.decode(data, final=not data)
            if piece:
                pieces.append(piece)
                if on_text is not None:
                    on_text(piece)
            if not data:
                return


def _check_exit(name: str, status: int, text: str, stderr_line: str, shown: str) -> None:
    if status < 0:
        raise ProviderError(f"command {name} was killed by signal {_signal_name(-status)}", partial=shown)
    if status != 0:
        why = f": {stderr_line}" if stderr_line else " (nothing on stderr)"
        raise ProviderError(f"command {name} exited with status {status}{why}", partial=shown)
    if not text.strip():
        # An empty answer is never worth caching; most tools print nothing when they could not answer.
        raise ProviderError(f"command {name} exited with status 0 but printed nothing" + _stderr_hint(stderr_line))


def _stderr_hint(line: str) -> str:
    return f" (stderr: {line})" if line else ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _feed(pipe: IO[bytes], text: str) -> None:
    """Write the prompt and close stdin (a thread: a big prompt must not block us reading stdout)."""
    # BrokenPipeError: the tool exited or closed stdin without reading it all; its exit status tells the story.
    with contextlib.suppress(BrokenPipeError):
        try:
            pipe.write(text.encode("utf-8"))
        finally:
            pipe.close()


class _Tail:
    """Keeps the last STDERR_TAIL bytes of a stream, read to its end in a thread."""

    def __init__(self) -> None:
        self._data = b""

    def drain(self, pipe: IO[bytes]) -> None:
        # This thread closes the pipe itself: closing it from outside while a read is blocked on it would
        # free the descriptor number for reuse under that read.
        with pipe:
            fd = pipe.fileno()
            for chunk in iter(lambda: os.read(fd, 65536), b""):
                self._data = (self._data + chunk)[-STDERR_TAIL:]

    def last_line(self) -> str:
        lines = [line.strip() for line in self._data.decode("utf-8", "replace").splitlines() if line.strip()]
        return scrub(" ".join(lines[-1].split()))[:300] if lines else ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the tool's process group, give it KILL_GRACE to exit, then SIGKILL what is left."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):  # it ignored SIGTERM: SIGKILL cannot be ignored
        proc.wait(timeout=KILL_GRACE)
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return  # the group has already gone: nothing left to stop
