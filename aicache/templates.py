"""Prompt templates: a system prompt and a user-message format with ``{question}`` and ``{input}``.

Built-in templates ship in ``aicache/data/templates/``; a user's ``<config dir>/templates/<name>.toml`` with
the same keys overrides or adds one. A template's version is a hash of its content, and both go into the cache
partition, so editing a template never serves answers made with the old one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aicache import paths
from aicache.cachekeys import content_hash
from aicache.errors import ConfigError

DEFAULT_PROMPT = "{input}\n\n{question}"  # piped content first, the instruction last (as llm and sgpt do)
_PLACEHOLDER = re.compile(r"\{(question|input)\}")


@dataclass(frozen=True)
class Template:
    name: str
    system: str | None
    prompt: str
    version: str

    def render(self, question: str, input_text: str | None) -> str:
        # One pass over the template's own text: a question or input holding "{input}" is sent as typed.
        piped = None if input_text is None else without_final_newline(input_text)
        values = {"question": question, "input": piped or ""}
        rendered = _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.prompt).strip()
        if piped is not None and "{input}" not in self.prompt:
            return f"{piped}\n\n{rendered}"  # a template that does not place the input: input first
        return rendered


def without_final_newline(piped: str) -> str:
    """Piped text as the prompt places it: it ends with a newline (and maybe spaces) that, kept, would add a second
    blank line before what follows it."""
    return piped.rstrip()


def _parse(name: str, path: Path) -> Template:
    import tomllib

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"template {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read template {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"template {path} is not valid TOML: {exc}") from None
    prompt = data.get("prompt", "{question}")
    if not isinstance(prompt, str) or ("{question}" not in prompt and "{input}" not in prompt):
        raise ConfigError(f"template {path}: prompt must be a string using {{question}} or {{input}}")
    system = data.get("system")
    if system is not None and not isinstance(system, str):
        raise ConfigError(f"template {path}: system must be a string, not {type(system).__name__}")
    return Template(name=name, system=system, prompt=prompt, version=content_hash(text)[7:19])


def builtin_names() -> list[str]:
    folder = paths.PACKAGE_DATA / "templates"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def _check_name(name: str) -> None:
    # A name picks a file in one of two folders; "../config" or "/etc/x" would read a file outside them.
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError(
            f"template name {name!r} must be a plain name (no path separator, not starting with a dot): "
            f"a template is <config dir>/templates/NAME.toml or a built-in one"
        )


def load(name: str) -> Template:
    _check_name(name)
    user_file = paths.config_dir() / "templates" / f"{name}.toml"
    if user_file.exists():  # a directory or unreadable file of that name is an error, not passed over
        return _parse(name, user_file)
    builtin = paths.PACKAGE_DATA / "templates" / f"{name}.toml"
    if builtin.is_file():
        return _parse(name, builtin)
    known = ", ".join(builtin_names())
    raise ConfigError(f"unknown template {name!r} (built-in: {known}; or add {user_file})")
