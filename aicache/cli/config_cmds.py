"""``aicache config ...`` and ``aicache keys ...``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import typer

from aicache import output
from aicache.errors import ConfigError

config_app = typer.Typer(help="Show and change settings (a TOML file).", no_args_is_help=True)
keys_app = typer.Typer(help="Store API keys in a private key file (mode 0600).", no_args_is_help=True)


@config_app.command("show")
def config_show(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show every setting: its value, its default and where the value comes from; and the endpoint in use."""
    from aicache import config, paths, providers

    settings = config.load()
    views = config.describe(settings)
    provider = str(settings.get("provider"))
    endpoint, endpoint_source = providers.endpoint_in_use(settings, provider)
    if json_out:
        output.emit_json(
            {
                "config_file": str(paths.config_file()),
                "settings": settings.data,
                "details": [asdict(view) for view in views],
                "endpoint": {"provider": provider, "url": endpoint, "source": endpoint_source},
            }
        )
        return
    from aicache import render

    for warning in settings.warnings:
        output.warn(warning)
    render.settings_table(f"settings ({paths.config_file()})", views, (endpoint, endpoint_source))


@config_app.command("path")
def config_path() -> None:
    """Print the path of the config file (learned settings live in learned/ next to it)."""
    from aicache import paths

    print(paths.config_file())


@config_app.command("get")
def config_get(
    name: str = typer.Argument(..., help="Dotted setting name, e.g. cache.threshold."),
    json_out: bool = typer.Option(False, "--json", help="Print the value as JSON."),
) -> None:
    """Print the value in effect of one setting (strings without quotes; nothing if unset with no default)."""
    from aicache import config, schema

    settings = config.load()
    try:
        parts = schema.parse_name(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if schema.find(parts) is None and not schema.is_section(parts) and schema.dotted(parts) not in settings.unknown:
        raise ConfigError(f"unknown setting {schema.dotted(parts)}{schema.suggest(parts)}")
    value = settings.in_effect(parts)
    if json_out:
        output.emit_json({"name": schema.dotted(parts), "value": value, "source": settings.source(parts)})
    elif isinstance(value, str):
        print(value)
    elif value is not None:
        print(schema.format_value(value) if not isinstance(value, dict) else _table_text(value))


def _table_text(value: dict[str, Any]) -> str:
    import tomli_w

    return tomli_w.dumps(value).rstrip("\n")


# Values may be negative numbers ("-1"): without this, the parser would read them as unknown options.
_VALUES = {"ignore_unknown_options": True}


@config_app.command("set", context_settings=_VALUES)
def config_set(
    name: str = typer.Argument(..., help="Dotted setting name, e.g. providers.openai.base_url."),
    value: str = typer.Argument(..., help='A TOML value (true, 0.9, -1, ["claude", "-p"]) or plain text.'),
) -> None:
    """Change one setting in the config file, checked against its type and range; comments are kept."""
    from aicache import config

    path = config.save_value(name, value)
    output.note(f"set {name} in {path}")


@config_app.command("unset")
def config_unset(name: str = typer.Argument(..., help="Dotted setting name, e.g. cache.threshold.")) -> None:
    """Remove one setting from the config file, so its default applies again; comments are kept.

    A learned value is not in the file and stays: `aicache proposals revert ID` undoes the proposal that set it.
    """
    from aicache import config

    path, removed = config.unset_value(name)
    learned = _learned_value(name)
    if removed:
        output.note(f"unset {name} in {path}" + (f"; {learned} applies now" if learned else ""))
    elif learned:
        from aicache import schema

        is_setting = schema.find(schema.parse_name(name)) is not None  # not a table of them
        override = f", `aicache config set {name} VALUE` overrides it" if is_setting else ""
        output.warn(
            f"{name} is not set in {path} but has {learned}: `aicache proposals list --status applied` shows the "
            f"proposal that set it, `aicache proposals revert ID` undoes it{override}"
        )
    else:
        output.note(f"{name} was not set in {path}; nothing changed")


def _learned_value(name: str) -> str | None:
    """ "its learned value X (FILE)" when a learned file sets ``name``: unset cannot remove that value."""
    from aicache import config, schema
    from aicache.learn.settings_repo import learned_files

    try:
        parts = schema.parse_name(name)
        holder = config.learned_holder(parts, learned_files())
    except (ValueError, ConfigError):  # a broken learned file: unset is how a user fixes things, so say nothing
        return None
    if holder is None:
        return None
    node: Any = holder.data
    for part in parts:
        node = node[part]
    if isinstance(node, dict):
        return f"learned values in {holder.path}"
    return f"the learned value {schema.format_value(node)} from {holder.path}"


@keys_app.command("set")
def keys_set(
    provider: str = typer.Argument(..., help="openai, anthropic, or the base URL the key is for."),
    key: str = typer.Option(None, "--key", help="The key; read from stdin or prompted for when omitted."),
) -> None:
    """Store an API key (prompted without echo on a terminal, or read from stdin)."""
    import sys

    from aicache import credentials
    from aicache.errors import UsageError

    credentials.check_name(provider)  # before asking for the key, not after it was typed
    if key is None:
        if sys.stdin is None or sys.stdin.closed:
            raise UsageError("no key given: pass --key, or type or pipe it on stdin")
        key = typer.prompt(f"{provider} API key", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    credentials.set_key(provider, key)
    output.note(f"saved {provider} key in {credentials.keys_path()}")


@keys_app.command("remove")
def keys_remove(provider: str = typer.Argument(..., help="The provider or base URL the key is stored under.")) -> None:
    """Delete a stored API key."""
    from aicache import credentials

    if not credentials.delete_key(provider):
        raise ConfigError(f"no key is stored for {provider!r} in {credentials.keys_path()}")
    output.note(f"removed the {provider} key from {credentials.keys_path()}")


@keys_app.command("list")
def keys_list() -> None:
    """List stored keys, masked."""
    from aicache import credentials, render

    keys = credentials.list_keys().items()
    render.table(("provider", "key"), list(keys), title=f"keys ({credentials.keys_path()})", empty="no keys stored")


@keys_app.command("path")
def keys_path() -> None:
    """Print the path of the key file."""
    from aicache import credentials

    print(credentials.keys_path())


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.add_typer(keys_app, name="keys")
