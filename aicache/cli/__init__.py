"""The ``aicache`` command line: parse, call the core, render, exit.

Commands live in one module per group; this module builds the app and owns the edge: every ``AicacheError``
becomes a one-line message and its exit code, anything unexpected a one-line message and exit 1 (the traceback
only with ``AICACHE_DEBUG=1``). Typer itself turns usage errors into exit 2 and Ctrl-C into exit 130.
Importing this module must stay cheap: command modules import the core lazily where it is heavy.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
from typing import TYPE_CHECKING, NoReturn

import typer
import typer.main

if TYPE_CHECKING:
    from typer._click.core import Command  # Typer vendors its own Click

from aicache import __version__
from aicache.cli import ask_cmd, config_cmds, helper_cmds, hook_cmds, learn_cmds, memory_cmds, semantic_cmds
from aicache.errors import AicacheError, ExitCode

app = typer.Typer(
    name="aicache",
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
) -> None:
    """A local cache in front of your LLM: exact and semantic hits, episodic memory, offline learning."""


ask_cmd.register(app)
memory_cmds.register(app)
config_cmds.register(app)
semantic_cmds.register(app)
hook_cmds.register(app)
helper_cmds.register(app)
learn_cmds.register(app)


def _fail(exc: AicacheError) -> NoReturn:
    from aicache import output

    if os.environ.get("AICACHE_DEBUG") == "1":
        raise exc
    output.error(str(exc))
    sys.exit(exc.exit_code)


@functools.cache
def command() -> Command:
    """The Click command Typer builds from ``app``, built once per process.

    Typer builds it on every call, reading every command's signature and type hints (~25 ms); the warm helper
    builds it before it forks, so the commands it runs start parsing at once.
    """
    return typer.main.get_command(app)


def main() -> None:
    from aicache import output

    try:
        command()(prog_name="aicache")
    except AicacheError as exc:
        _fail(exc)
    except sqlite3.DatabaseError as exc:
        from aicache import db

        _fail(db.corruption_error(exc) if db.is_corruption(exc) else db.translate(exc))
    except Exception as exc:
        if os.environ.get("AICACHE_DEBUG") == "1":
            raise
        output.error(f"unexpected {type(exc).__name__}: {exc} (set AICACHE_DEBUG=1 for the traceback)")
        sys.exit(ExitCode.ERROR)
