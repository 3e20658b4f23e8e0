"""Typed errors raised by the core, and the exit codes the CLI maps them to.

The core never prints or exits: it raises an ``AicacheError`` subclass whose ``exit_code`` says how the
command line should end. Every code is pinned by a test, because scripts and git hooks branch on them.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes: the one place they are defined."""

    OK = 0
    ERROR = 1  # anything unexpected
    USAGE = 2  # bad arguments or bad input (same code Typer uses for usage errors)
    PROVIDER = 3  # the LLM provider failed: HTTP error, timeout, dropped stream, command failed
    CACHE_MISS = 4  # --cache-only and nothing cached
    CONFIG = 5  # unreadable or unwritable config or key file, invalid setting, unknown provider or model
    STORE = 6  # the SQLite store is locked past its timeout, corrupt or not writable
    PROPOSAL = 7  # a learned-settings proposal: repository busy (rebase, merge), branch gone or taken, conflict
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
    TERMINATED = 143  # SIGTERM (`timeout`, a supervisor), as shells report it
    PIPE_CLOSED = 141  # the reader of stdout went away (`| head -1`), as shells report SIGPIPE


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command was (``cli``): it ends as Ctrl-C does, the ask recorded as interrupted
    and the failure reported (as JSON with ``--json``), with SIGTERM's exit status."""


class AicacheError(Exception):
    """Base of every error the core raises on purpose. ``str(error)`` is a one-line message."""

    exit_code: ExitCode = ExitCode.ERROR


class UsageError(AicacheError):
    """The request cannot be made as given (empty question, oversized or undecodable input)."""

    exit_code = ExitCode.USAGE


class ConfigError(AicacheError):
    """Configuration, key file, provider or model name is wrong."""

    exit_code = ExitCode.CONFIG


class ProviderError(AicacheError):
    """The provider did not deliver a complete answer."""

    exit_code = ExitCode.PROVIDER

    def __init__(self, message: str, *, status: int | None = None, partial: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.partial = partial  # text already shown to the user before the failure


class CacheMissError(AicacheError):
    """``--cache-only`` was asked and the cache had no answer."""

    exit_code = ExitCode.CACHE_MISS


class StoreError(AicacheError):
    """The store could not be read or written."""

    exit_code = ExitCode.STORE


class StoreBusyError(StoreError):
    """Another process held the database past the busy timeout."""


class StoreCorruptError(StoreError):
    """The database failed its integrity check and was moved aside."""


class ProposalError(AicacheError):
    """A learned-settings proposal cannot be made, applied, rejected or reverted as asked."""

    exit_code = ExitCode.PROPOSAL
