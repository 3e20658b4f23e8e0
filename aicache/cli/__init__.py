"""The ``aicache`` command line: parse, call the core, render, exit.

Commands live in one module per group; this module builds the app and owns the edge: every ``AicacheError``
becomes a one-line message and its exit code, anything unexpected a one-line message and exit 1 (the traceback
only with ``AICACHE_DEBUG=1``). Usage errors found by the parser are one line too, in Click's words, exit 2;
with ``--json`` on the command line every failure is also a JSON object on stdout. A group named without a
subcommand (``aicache hook``) prints its help and exits 0. Ctrl-C exits 130, and a reader of stdout that went
away (``aicache log | head -1``) 141, quietly, as SIGPIPE ends a Unix tool.
Importing this module must stay cheap: command modules import the core lazily where it is heavy.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import typer
import typer.main
from typer._click import exceptions as click_errors  # Typer vendors its own Click
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click.core import Command, Context

from aicache import __version__
from aicache.cli import (
    ask_cmd,
    complete_cmd,
    config_cmds,
    feedback_cmd,
    helper_cmds,
    hook_cmds,
    learn_cmd,
    learn_cmds,
    memory_cmds,
    semantic_cmds,
)
from aicache.errors import AicacheError, ExitCode, Terminated


class _Commands(TyperGroup):
    """The root command group; it ends any command whose stdout's reader went away with exit 141."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # Click would end the process with exit 1, the code of an unexpected error, and say nothing.
            from aicache import output

            raise typer.Exit(output.reader_gone()) from None


app = typer.Typer(
    name="aicache",
    cls=_Commands,
    help="A local cache in front of your LLM: exact and semantic hits, episodic memory, offline learning.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"aicache {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", help="No notes on stderr for any command (warnings and errors still show)."
    ),
) -> None:
    """A local cache in front of your LLM: exact and semantic hits, episodic memory, offline learning."""
    if quiet:
        from aicache import output

        output.set_quiet(True)


ask_cmd.register(app)
memory_cmds.register(app)
feedback_cmd.register(app)
config_cmds.register(app)
semantic_cmds.register(app)
hook_cmds.register(app)
helper_cmds.register(app)
complete_cmd.register(app)
learn_cmd.register(app)
learn_cmds.register(app)


def _wants_json(args: list[str]) -> bool:
    """``--json`` among the options (not after ``--``, where it would be a question's word)."""
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _fail(message: str, code: int, json_out: bool) -> NoReturn:
    from aicache import output

    output.error(message)  # first: stderr still tells what failed when stdout's reader has gone
    if json_out:
        output.emit_json_error(message, code)
    sys.exit(code)


def _usage_message(exc: click_errors.ClickException) -> str:
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        return f"{message} (see '{ctx.command_path} --help')"
    return message


@functools.cache
def command() -> Command:
    """The Click command Typer builds from ``app``, built once per process.

    Typer builds it on every call, reading every command's signature and type hints (~25 ms); the warm helper
    builds it before it forks, so the commands it runs start parsing at once.
    """
    return typer.main.get_command(app)


def main() -> None:
    try:
        _main(sys.argv[1:])
    except BrokenPipeError:  # while a failure was reported as JSON on stdout (`--json | head -c 10`)
        from aicache import output

        sys.exit(output.reader_gone())


# The signals that ended the command. Typer turns the KeyboardInterrupt they raise into a silent exit 130, so this
# is how _main knows to report them (as JSON with --json) and which status to end with.
_SIGNALLED: list[int] = []


def _on_signal(signum: int, frame: object) -> NoReturn:
    _SIGNALLED.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _interrupted(json_out: bool) -> NoReturn:
    if _SIGNALLED and _SIGNALLED[-1] == signal.SIGTERM:
        _fail("terminated", ExitCode.TERMINATED, json_out)
    _fail("interrupted", ExitCode.INTERRUPTED, json_out)


@contextlib.contextmanager
def _signals_reported() -> Iterator[None]:
    """SIGINT and SIGTERM raise where the command is, for ``_run`` to report. The handlers of before are put back
    after, so a helper's child that outlives its command still ends on SIGTERM as it did."""
    _SIGNALLED.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:  # a background job's SIGINT stays ignored
            signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)


def _main(args: list[str]) -> None:
    json_out = _wants_json(args)
    with _signals_reported():
        _run(args, json_out)


def _run(args: list[str], json_out: bool) -> None:
    try:
        code = command().main(args=args, prog_name="aicache", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        # A group named alone (`aicache hook`): the user asked what it can do, so the help is the answer.
        # Typer's rich help prints itself while the error is built; a plain help comes back as its message.
        if help_text := exc.format_message().strip():
            print(help_text)
        code = ExitCode.OK
    except click_errors.ClickException as exc:
        _fail(_usage_message(exc), exc.exit_code, json_out)
    except typer.Abort:
        _fail("aborted", ExitCode.INTERRUPTED, json_out)
    except KeyboardInterrupt:
        _interrupted(json_out)
    except AicacheError as exc:
        if os.environ.get("AICACHE_DEBUG") == "1":
            raise
        _fail(str(exc), exc.exit_code, json_out)
    except sqlite3.DatabaseError as exc:
        from aicache import db

        error = db.corruption_error(exc) if db.is_corruption(exc) else db.translate(exc)
        if os.environ.get("AICACHE_DEBUG") == "1":
            raise error from exc
        _fail(str(error), error.exit_code, json_out)
    except Exception as exc:
        if os.environ.get("AICACHE_DEBUG") == "1":
            raise
        message = f"unexpected {type(exc).__name__}: {exc} (set AICACHE_DEBUG=1 for the traceback)"
        _fail(message, ExitCode.ERROR, json_out)
    if _SIGNALLED:
        _interrupted(json_out)
    sys.exit(code if isinstance(code, int) else ExitCode.OK)
