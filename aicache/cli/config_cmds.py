"""``aicache config ...`` and ``aicache keys ...``."""

from __future__ import annotations

import typer

from aicache import output

config_app = typer.Typer(help="Show and change settings (a TOML file).", no_args_is_help=True)
keys_app = typer.Typer(help="Store API keys in a private key file (mode 0600).", no_args_is_help=True)


def _flatten(tree: dict[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for name, value in tree.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


@config_app.command("show")
def config_show(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show every setting with its current value (defaults, config file and environment merged)."""
    from aicache import config

    settings = config.load()
    if json_out:
        output.emit_json({"settings": settings.data})
        return
    from aicache import paths, render

    render.key_values(f"settings ({paths.config_file()})", _flatten(settings.data))


@config_app.command("path")
def config_path() -> None:
    """Print the path of the config file."""
    from aicache import paths

    print(paths.config_file())


@config_app.command("set")
def config_set(
    name: str = typer.Argument(..., help="Dotted setting name, e.g. providers.openai.base_url."),
    value: str = typer.Argument(..., help='A TOML value (true, 0.9, ["claude", "-p"]) or plain text.'),
) -> None:
    """Change one setting in the config file."""
    from aicache import config

    path = config.save_value(name, value)
    output.note(f"set {name} in {path}")


@keys_app.command("set")
def keys_set(
    provider: str = typer.Argument(..., help="openai or anthropic (or any name a config refers to)."),
    key: str = typer.Option(None, "--key", help="The key; read from stdin or prompted for when omitted."),
) -> None:
    """Store an API key (prompted without echo on a terminal, or read from stdin)."""
    import sys

    from aicache import credentials

    if key is None:
        key = typer.prompt(f"{provider} API key", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    key = key.strip()
    if not key:
        raise typer.BadParameter("the key is empty")
    credentials.set_key(provider, key)
    output.note(f"saved {provider} key in {credentials.keys_path()}")


@keys_app.command("list")
def keys_list() -> None:
    """List stored keys, masked."""
    from aicache import credentials, render

    render.key_values(f"keys ({credentials.keys_path()})", credentials.list_keys())


@keys_app.command("path")
def keys_path() -> None:
    """Print the path of the key file."""
    from aicache import credentials

    print(credentials.keys_path())


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.add_typer(keys_app, name="keys")
