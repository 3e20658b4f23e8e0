"""``aicache hook install | uninstall | status | run``: commit messages suggested from the staged diff.

The commands are adapters over ``aicache.hooks.install`` and ``aicache.hooks.run``. The installed scripts call
``aicache.hooks.main`` directly (this package imports Typer, too slow for every commit); ``hook run`` does the
same work and is there to try a hook by hand. Like the scripts, it always exits 0.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from aicache import output

if TYPE_CHECKING:
    from aicache.hooks.install import HooksDir, HookState, Report

hook_app = typer.Typer(
    help="Git hooks: a suggested commit message from the staged diff (cached per diff).", no_args_is_help=True
)

GLOBAL_HELP = "Use this hooks directory for every repository (sets the global core.hooksPath)."


def _where(global_dir: Path | None) -> HooksDir:
    from aicache.hooks import install as hooks

    return hooks.locate_global(global_dir) if global_dir is not None else hooks.locate(Path.cwd())


def _show(report: Report) -> None:
    for line in report.actions or ("nothing to do",):
        output.note(line)
    for warning in report.warnings:
        output.warn(warning)
    output.note(f"hooks directory: {report.hooks_dir} ({report.scope})")


@hook_app.command("install")
def install(global_dir: Path = typer.Option(None, "--global", metavar="DIR", help=GLOBAL_HELP)) -> None:
    """Install prepare-commit-msg and post-commit; an existing hook is kept and runs first."""
    from aicache.hooks import install as hooks

    _show(hooks.install(_where(global_dir)))


@hook_app.command("uninstall")
def uninstall(global_dir: Path = typer.Option(None, "--global", metavar="DIR", help=GLOBAL_HELP)) -> None:
    """Remove aicache's hooks and restore exactly what was there before."""
    from aicache.hooks import install as hooks

    _show(hooks.uninstall(_where(global_dir)))


def _state_line(state: HookState) -> str:
    if state.installed:
        line = "installed"
        if state.chained is not None:
            line += f", runs your earlier hook first ({state.chained.name})"
        if not state.python_found:
            line += f"; its interpreter {state.python} is gone: run `aicache hook install` again"
        return line
    if state.other_hook:
        return "not installed (another hook is in place)"
    return "not installed" + (f" ({state.chained.name} is left over)" if state.chained is not None else "")


@hook_app.command("status")
def status(
    global_dir: Path = typer.Option(None, "--global", metavar="DIR", help="Show this global hooks directory."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show where git looks for hooks, what aicache installed there, and what it chains."""
    from aicache.hooks import install as hooks

    found = hooks.status(_where(global_dir))
    if json_out:
        output.emit_json({"hooks": asdict(found)})
        return
    print(f"hooks directory: {found.hooks_dir} ({found.scope})")
    print(f"core.hooksPath: {found.hooks_path_setting or 'not set'}")
    for state in found.hooks:
        print(f"{state.name}: {_state_line(state)}")


@hook_app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    hook: str = typer.Argument(..., help="prepare-commit-msg or post-commit."),
    args: list[str] = typer.Argument(None, help="The arguments git passes to the hook."),
) -> None:
    """Run a hook as git would (what the installed scripts do). Always exits 0."""
    from aicache.hooks import run as hook_run

    hook_run.detach_from_terminal()
    hook_run.finish(hook_run.run_hook(hook, list(args or []), output.warn))


def register(app: typer.Typer) -> None:
    app.add_typer(hook_app, name="hook")
