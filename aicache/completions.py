"""Static shell completion scripts for bash, zsh and fish, generated from the command tree.

Static scripts complete instantly (no Python start per Tab press) and can be packaged; a test regenerates them
and fails when ``completions/`` is stale. Regenerate with ``make completions``.

Option and argument values complete too. Fixed sets (providers, outcomes, hook names, setting names) are written
into the scripts; values that live in the user's config and store (models and aliases, templates) come from the
hidden ``aicache complete models|templates`` command, which runs only when Tab is pressed after ``-m`` or ``-t``.
Which parameter takes which values is decided by its name (``VALUE_SOURCES``), so a new command with a
``--model`` option or a setting ``name`` completes without changes here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer


def setting_names() -> list[str]:
    """Every dotted setting name ``config set`` knows, from the schema; a name the user chooses (an alias, a
    model's prices, a template) ends the offer at the dot before it."""
    from aicache.schema import SETTINGS

    return sorted({setting.name.partition("*")[0] for setting in SETTINGS})


def _fixed(name: str) -> list[str]:
    from aicache.aliases import PROVIDERS
    from aicache.hooks.install import HOOK_NAMES
    from aicache.memory import Outcome

    return {
        "provider": list(PROVIDERS),
        "outcome": [o.value for o in Outcome],
        "hook": list(HOOK_NAMES),
        "setting": setting_names(),
    }[name]


# Parameter name -> ("fixed", set) or ("dynamic", kind for `aicache complete KIND`). A setting's name is a
# parameter called ``name`` under ``config``.
VALUE_SOURCES: dict[str, tuple[str, str]] = {
    "model": ("dynamic", "models"),
    "template": ("dynamic", "templates"),
    "provider": ("fixed", "provider"),
    "outcome": ("fixed", "outcome"),
    "hook": ("fixed", "hook"),
}


def dynamic_values(kind: str) -> list[str]:
    """``aicache complete KIND``: models (aliases, configured models, models in the store) or templates."""
    from aicache import config, paths, templates

    settings = config.load()
    if kind == "templates":
        user = paths.config_dir() / "templates"
        own = [p.name.removesuffix(".toml") for p in user.glob("*.toml")] if user.is_dir() else []
        return sorted({*templates.builtin_names(), *own})
    if kind != "models":
        return []
    found = {str(settings.get("model"))} | set(settings.get("aliases", {}) or {})
    found |= {str(v) for v in (settings.get("judge.model"), settings.get("hook.model")) if v}
    if paths.db_path().exists():
        import sqlite3

        # Read-only and without migrations: a Tab press must never create or change the store.
        try:
            conn = sqlite3.connect(f"file:{paths.db_path()}?mode=ro", uri=True, timeout=0.2)
            try:
                found |= {r[0] for r in conn.execute("SELECT DISTINCT model FROM entries") if r[0]}
            finally:
                conn.close()
        except sqlite3.Error:
            pass  # a busy or damaged store only means fewer suggestions
    return sorted(found)


def _values_of(path: str, param: Any) -> tuple[list[str], list[str], str | None]:
    """(option names, fixed values, dynamic kind) for a parameter that takes known values, else empty."""
    name = param.name or ""
    if name == "name" and path.startswith("config"):
        source: tuple[str, str] | None = ("fixed", "setting")
    else:
        source = VALUE_SOURCES.get(name)
    if source is None or getattr(param, "is_flag", False):
        return [], [], None
    opts = [o for o in getattr(param, "opts", []) if o.startswith("-")]
    kind, which = source
    return opts, (_fixed(which) if kind == "fixed" else []), (which if kind == "dynamic" else None)


def _value_specs() -> dict[str, list[tuple[list[str], list[str], str | None]]]:
    """For every command path, the parameters with known values: (option names or [] for an argument, ...)."""
    from aicache.cli import app

    root = typer.main.get_command(app)
    specs: dict[str, list[tuple[list[str], list[str], str | None]]] = {}

    def walk(command: Any, path: str) -> None:
        found = [_values_of(path, p) for p in command.params]
        specs[path] = [f for f in found if f[1] or f[2]]
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not getattr(sub, "hidden", False):
                walk(sub, f"{path} {name}".strip())

    walk(root, "")
    return specs


def _tree() -> dict[str, tuple[list[str], str]]:
    """Map "cmd sub" paths to (options, help) for every command and group, "" being the root."""
    from aicache.cli import app

    root = typer.main.get_command(app)
    found: dict[str, tuple[list[str], str]] = {}

    def walk(command: Any, path: str) -> None:
        options = sorted(
            o
            for p in command.params
            for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])
            if o.startswith("-") and o not in ("--install-completion", "--show-completion")
        )
        found[path] = (
            [*options, "--help"],
            (command.help or "").strip().splitlines()[0] if command.help else "",
        )
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not getattr(sub, "hidden", False):
                walk(sub, f"{path} {name}".strip())

    walk(root, "")
    return found


def _children(tree: dict[str, tuple[list[str], str]], path: str) -> list[str]:
    depth = len(path.split()) + 1 if path else 1
    prefix = f"{path} " if path else ""
    return sorted(p.split()[-1] for p in tree if p.startswith(prefix) and len(p.split()) == depth)


def _bash_value_cases() -> str:
    """``case "$path|$prev"`` arms that complete an option's value, and ``"$path|"`` arms for an argument."""
    arms = []
    for path, params in _value_specs().items():
        for opts, fixed, dynamic in params:
            words = " ".join(fixed) if fixed else ""
            source = f"$(aicache complete {dynamic} 2>/dev/null)" if dynamic else words
            keys = "|".join(f'"{path}|{o}"' for o in opts) if opts else f'"{path}|"'
            arms.append(f'        {keys}) values="{source}" ;;')
    return "\n".join(arms)


def bash() -> str:
    tree = _tree()
    cases = []
    for path, (options, _help) in tree.items():
        words = " ".join(_children(tree, path) + options)
        cases.append(f'        "{path}") words="{words}" ;;')
    case_block = "\n".join(cases)
    return f"""# bash completion for aicache (generated by `make completions`; do not edit)
_aicache() {{
    local cur prev path="" w i args=0
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        [[ $w == -* ]] && continue
        case "$path${{path:+ }}$w" in
{chr(10).join(f'            "{p}") path="{p}" ;;' for p in tree if p)}
            *) args=$((args + 1)) ;;
        esac
    done
    local values="" key="$path|$prev"
    [[ $prev != -* && $cur != -* && $args == 0 ]] && key="$path|"
    case "$key" in
{_bash_value_cases()}
    esac
    if [[ -n $values ]]; then
        COMPREPLY=($(compgen -W "$values" -- "$cur"))
        return
    fi
    local words
    case "$path" in
{case_block}
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F _aicache aicache
"""


def zsh() -> str:
    return "#compdef aicache\n# zsh completion for aicache (generated by `make completions`; do not edit)\n" + (
        "autoload -U +X bashcompinit && bashcompinit\n" + bash().split("\n", 1)[1]
    )


def fish() -> str:
    tree = _tree()
    specs = _value_specs()
    lines = [
        "# fish completion for aicache (generated by `make completions`; do not edit)",
        "complete -c aicache -f",
    ]
    for path, (options, _help) in tree.items():
        words = path.split()
        if words:
            parent = " ".join(words[:-1])
            condition = _fish_condition(tree, parent)
            lines.append(f"complete -c aicache -n '{condition}' -a {words[-1]} -d {_fish_quote(tree[path][1])}")
        condition = _fish_condition(tree, path)
        valued = {o: (fixed, dynamic) for opts, fixed, dynamic in specs.get(path, []) for o in opts}
        for option in options:
            flag = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
            values = _fish_values(*valued[option]) if option in valued else ""
            lines.append(f"complete -c aicache -n '{condition}' {flag}{values}")
        for opts, fixed, dynamic in specs.get(path, []):
            if not opts:  # an argument: offered where the subcommand's words would be
                lines.append(f"complete -c aicache -n '{condition}'{_fish_values(fixed, dynamic)}")
    return "\n".join(lines) + "\n"


def _fish_quote(text: str) -> str:
    """``text`` in fish's single quotes, where only a backslash and a quote are escaped ("aicache's hooks")."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_values(fixed: list[str], dynamic: str | None) -> str:
    source = f"(aicache complete {dynamic} 2>/dev/null)" if dynamic else " ".join(fixed)
    return f" -x -a '{source}'"  # fish runs a quoted (command) each time it completes


def _fish_condition(tree: dict[str, tuple[list[str], str]], path: str) -> str:
    if not path:
        return "__fish_use_subcommand"
    seen = " && ".join(f"__fish_seen_subcommand_from {w}" for w in path.split())
    deeper = _children(tree, path)
    if deeper:
        return f"{seen} && not __fish_seen_subcommand_from {' '.join(deeper)}"
    return seen


SCRIPTS = {"aicache.bash": bash, "_aicache": zsh, "aicache.fish": fish}


def write_all(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in SCRIPTS.items():
        (folder / name).write_text(make(), encoding="utf-8")
        written.append(folder / name)
    return written


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "completions")):
        print(path)
