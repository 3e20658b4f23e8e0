"""``aicache helper start | stop | status``: the warm background process that serves ``ask`` (``aicache.helper``).

Nobody needs these to use aicache: a helper starts by itself after a cold ``ask`` and exits after
``helper.idle_minutes`` without requests. They are for looking at it, for benchmarks, and for stopping it.
"""

from __future__ import annotations

import os
from typing import Any

import typer

from aicache import output
from aicache.errors import AicacheError, ConfigError

helper_app = typer.Typer(
    help="The warm helper: a background process that keeps aicache loaded so `ask` starts fast.",
    no_args_is_help=True,
)

START_TIMEOUT = 60.0  # seconds: loading the model takes ~1 s; a first export is done by `ask`, not here
STOP_ASK_TIMEOUT = 2.0  # seconds for a helper to answer `stop` (it does within ms) before it counts as stuck


def _describe(status: dict[str, Any]) -> str:
    vectors = status.get("index_vectors")  # absent from a helper started by an older version
    holds = f", holds the vector index ({vectors:,} vectors)" if vectors is not None else ""
    return (
        f"helper running: pid {status['pid']}, up {status['uptime_s']:.0f} s, served {status['served']}, "
        f"{status['rss_mb']:.0f} MB{holds}, stops after {status['idle_minutes']:g} idle min; socket {status['socket']}"
    )


@helper_app.command("start")
def start(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Start the helper now (it normally starts by itself after a cold `ask`) and wait until it serves."""
    from aicache import config
    from aicache.helper import client, wire

    if os.environ.get(wire.DISABLE_ENV) == "0":
        raise ConfigError(f"the helper is turned off by {wire.DISABLE_ENV}=0")
    if not config.load().get("helper.enabled", True):
        raise ConfigError("the helper is turned off (helper.enabled = false)")
    status = client.query("status")
    state = "already running" if status is not None else "started"
    if status is None:
        stuck = client.lock_holder()
        if stuck is not None:
            raise AicacheError(f"a helper (pid {stuck}) is running but does not answer; `aicache helper stop` ends it")
        if client.start_in_background() is None:
            raise AicacheError("could not start the helper process")
        status = client.wait_until_ready(START_TIMEOUT)
    if status is None:
        raise AicacheError(f"the helper did not start within {START_TIMEOUT:g} s; its log: {_log_path()}")
    if json_out:
        output.emit_json({"helper": {"state": state, "pid": status["pid"]}})
        return
    described = _describe(status)
    output.note(
        described.replace("helper running", "helper already running", 1) if state == "already running" else described
    )


@helper_app.command("stop")
def stop(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Stop the helper, also one that no longer answers; the next `ask` runs in-process (and starts a new one)."""
    from aicache.helper import client

    state, pid, note = "not running", None, "no helper is running"
    status = client.query("stop", timeout=STOP_ASK_TIMEOUT)
    if status:
        state, pid, note = "stopped", status["pid"], f"stopped the helper (pid {status['pid']})"
    else:
        stuck = client.lock_holder()  # a helper that holds its lock but does not answer is stuck (or still starting)
        how = client.end(stuck) if stuck is not None else None
        if how:
            state, pid, note = "ended", stuck, f"ended the helper (pid {stuck}), which did not answer, with {how}"
    if json_out:
        output.emit_json({"helper": {"state": state, "pid": pid}})
    else:
        output.note(note)


@helper_app.command("status")
def status(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show whether a helper serves this store, its pid, memory and how many commands it ran."""
    from aicache.helper import client

    found = client.query("status")
    stuck = client.lock_holder() if found is None else None  # running, but not answering
    if json_out:
        extra = {"not_answering_pid": stuck} if stuck is not None else {}
        output.emit_json({"helper": {"running": found is not None, **(found or {}), **extra, "log": _log_path()}})
        return
    if stuck is not None:
        print(f"helper not answering: pid {stuck} (`aicache helper stop` ends it)")
    else:
        print(_describe(found) if found else "helper not running")
    print(f"log: {_log_path()}")


def _log_path() -> str:
    from aicache.helper import wire

    path = wire.socket_path()
    return wire.companion(path, ".log") if path else "(no private runtime directory)"


def register(app: typer.Typer) -> None:
    app.add_typer(helper_app, name="helper")
