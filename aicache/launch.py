"""The ``aicache`` console script: hand ``ask`` to the warm helper when one is running, else run in-process.

Stdlib only until it knows which way it goes: this module and ``aicache.helper.client`` are all an ``ask``
served by the helper imports.
"""

from __future__ import annotations

import sys

from aicache.helper import client, wire


def main() -> None:
    wire.absolute_home()
    argv = sys.argv[1:]
    if not client.wanted(argv):
        _in_process()
        return
    code = client.run(argv)
    if code is not None:
        sys.exit(code)
    try:
        _in_process()
    finally:
        _start_helper_if_enabled()


def _in_process() -> None:
    from aicache.cli import main as cli_main

    cli_main()


def _start_helper_if_enabled() -> None:
    """After a cold run, start a helper for the next one (unless configured off); never fails the command."""
    try:
        from aicache import config

        if config.load().get("helper.enabled", True):
            client.start_in_background()
    except Exception:  # a bad config was already reported by the command itself
        pass
