"""Settings: built-in defaults, overlaid by the TOML config file, overlaid by the environment.

The file is only parsed when it exists, and ``tomllib`` is imported only then: most exact hits read no file.
Every value in it, and the environment overrides, are checked against ``schema.SETTINGS`` on load, so a bad
value stops a command at once with the setting's name rather than failing later where it is used.
``aicache config set section.key value`` writes through ``save_value``; values are parsed as TOML literals
(``true``, ``0.9``, ``["claude", "-p"]``) and fall back to plain strings. Writing goes through tomlkit, which
keeps the user's comments and layout.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicache import paths, schema
from aicache.errors import ConfigError

if TYPE_CHECKING:
    from aicache.learn.settings_repo import LearnedFile


@dataclass(frozen=True)
class HttpSettings:
    """The HTTP providers' timeouts and retries (``[http]``); defined here so the config needs no provider."""

    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    retries: int = 3  # extra attempts after the first, on connection errors, 408, 429 and 5xx
    backoff: float = 0.5  # first backoff in seconds, doubled each attempt, with jitter
    max_retry_after: float = 30.0  # a longer Retry-After is an error, not a wait
    total_timeout: float | None = None  # the whole request, retries and waits included; None: no such limit

    def within(self, seconds: float) -> HttpSettings:
        """These settings for a call that must be over in ``seconds``, whatever it waits for."""
        return replace(
            self,
            connect_timeout=min(self.connect_timeout, seconds),
            read_timeout=min(self.read_timeout, seconds),
            max_retry_after=min(self.max_retry_after, seconds),
            total_timeout=min(self.total_timeout or seconds, seconds),
        )


def _defaults() -> dict[str, Any]:
    tree: dict[str, Any] = {"aliases": {}, "prices": {}}  # name -> "model" or "provider/model"; model -> rates
    for setting in schema.SETTINGS:
        if setting.default is None or "*" in setting.parts:
            continue  # unset unless the user sets it; the code that reads it knows what applies then
        node = tree
        for part in setting.parts[:-1]:
            node = node.setdefault(part, {})
        node[setting.parts[-1]] = copy.deepcopy(setting.default)
    return tree


DEFAULTS: dict[str, Any] = _defaults()

#: settings the environment overrides, with the variable that does it
ENVIRONMENT = {"model": "AICACHE_MODEL", "provider": "AICACHE_PROVIDER"}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    import tomllib

    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None


@dataclass(frozen=True)
class Settings:
    """The merged settings. ``data`` is the whole tree; properties name the parts code reads often.

    ``file`` is what the config file set, ``environment`` which settings came from which variable, ``unknown``
    the names in the file that are not settings (ignored; the CLI warns about them), and ``learned`` the live
    learned files (``aicache proposals apply``), lowest precedence first.
    """

    data: dict[str, Any]
    file: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()
    learned: tuple[LearnedFile, ...] = ()

    @property
    def warnings(self) -> list[str]:
        """One line per unknown name in the file, for the CLI to show: likely a typo, ignored either way."""
        path = paths.config_file()
        return [
            f"unknown setting {name} in {path} (ignored; `aicache config unset {name}` removes it)"
            for name in self.unknown
        ]

    def source(self, parts: tuple[str, ...]) -> str:
        """Where the value of a setting comes from: ``env NAME``, ``file``, ``learned``, ``learned (project)`` or
        ``default``, in that order of precedence."""
        if (variable := self.environment.get(".".join(parts))) is not None:
            return f"env {variable}"
        if _holds(self.file, parts):
            return "file"
        learned = learned_holder(parts, self.learned)
        return learned.source if learned is not None else "default"

    def get(self, dotted: str, default: Any = None) -> Any:
        return self.value_of(tuple(dotted.split(".")), default)

    def value_of(self, parts: tuple[str, ...], default: Any = None) -> Any:
        """``get`` for a name already split (its parts may contain dots: ``("prices", "gpt-4.1", "input")``)."""
        node: Any = self.data
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def in_effect(self, parts: tuple[str, ...]) -> Any:
        """The value a setting has: set, its default, or, unset, that of the setting it follows (``hook.model``
        takes ``model``'s); None when unset with no default or one worked out at run time (``decision.threshold``)."""
        value = self.value_of(parts)
        if value is None and (setting := schema.find(parts)) is not None and setting.follows:
            return self.in_effect(tuple(setting.follows.split(".")))
        return value

    @property
    def http(self) -> HttpSettings:
        h = self.data["http"]
        return HttpSettings(
            connect_timeout=float(h["connect_timeout"]),
            read_timeout=float(h["read_timeout"]),
            retries=int(h["retries"]),
            backoff=float(h["backoff"]),
            max_retry_after=float(h["max_retry_after"]),
            total_timeout=None if h.get("total_timeout") is None else float(h["total_timeout"]),
        )

    def provider_settings(self, provider: str) -> dict[str, Any]:
        value = self.data["providers"].get(provider, {})
        return value if isinstance(value, dict) else {}


def _holds(tree: dict[str, Any], parts: tuple[str, ...]) -> bool:
    node: Any = tree
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def learned_holder(parts: tuple[str, ...], learned: Iterable[LearnedFile]) -> LearnedFile | None:
    """The learned file whose value of a setting is in effect (below the config file), or None."""
    holders = [file for file in learned if _holds(file.data, parts)]
    return holders[-1] if holders else None


def load() -> Settings:
    """The settings in effect; ``ConfigError`` naming the setting and the file (or variable) if one is invalid."""
    path = paths.config_file()
    file_data = read_file(path)
    unknown: list[str] = []
    if file_data:
        unknown, problem = schema.validate(file_data, str(path))
        if problem is not None:
            raise ConfigError(f"invalid setting: {problem}")
    from aicache.learn.settings_repo import learned_files

    # learned settings (``aicache learn``, applied by the user) rank above the defaults and below the user's file
    learned = tuple(learned_files())
    data = copy.deepcopy(DEFAULTS)
    for layer in learned:
        data = _merge(data, layer.data)
    data = _merge(data, file_data)
    environment = {}
    for name, variable in ENVIRONMENT.items():
        if value := os.environ.get(variable):
            _, problem = schema.validate({name: value}, variable)
            if problem is not None:
                raise ConfigError(f"invalid setting: {problem}")
            data[name] = value
            environment[name] = variable
    return Settings(data, file_data, environment, tuple(unknown), learned)


@dataclass(frozen=True)
class SettingView:
    """One line of ``config show``: a setting, its value in effect, its default and where the value comes from."""

    name: str
    value: Any  # in effect; None: not set, and no default or one worked out at run time
    default: str
    source: str  # "default", "learned", "learned (project)", "file", "env AICACHE_MODEL", "file (unknown, ignored)"
    help: str


def describe(settings: Settings) -> list[SettingView]:
    """Every documented setting, then the user's aliases and prices, then names in the file that are unknown."""
    views = []
    for setting in schema.SETTINGS:
        for parts in _instances(settings.data, setting.parts):
            views.append(
                SettingView(
                    schema.dotted(parts),
                    settings.in_effect(parts),
                    setting.shown_default,
                    settings.source(parts),
                    setting.help,
                )
            )
    for name in settings.unknown:
        views.append(SettingView(name, None, "", "file (unknown, ignored)", "not a setting of this version"))
    return views


def _instances(tree: Any, pattern: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The names ``pattern`` (with ``*`` for user-chosen parts) stands for: itself, or each one the user set."""
    if "*" not in pattern:
        return [pattern]
    found: list[tuple[str, ...]] = []

    def walk(node: Any, done: tuple[str, ...], rest: tuple[str, ...]) -> None:
        if not rest:
            found.append(done)
            return
        if not isinstance(node, dict):
            return
        names = sorted(node) if rest[0] == "*" else [rest[0]] if rest[0] in node else []
        for name in names:
            walk(node[name], (*done, name), rest[1:])

    walk(tree, (), pattern)
    return found


def parse_value(text: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def save_value(name: str, raw_value: str) -> Path:
    """Set one setting in the config file, keeping the rest of the file as the user wrote it (comments, order,
    formatting), after checking the value against the schema. Returns the file's path.

    ``raw_value`` is read as a TOML literal (``true``, ``0.9``, ``["claude", "-p"]``); text that is not one is a
    string, and so is any value of a setting that takes a string (``config set model 4`` sets ``"4"``).
    """
    path = paths.config_file()
    parts = _parse_name(name)
    setting = schema.find(parts)
    if setting is None:
        if schema.is_section(parts):
            raise ConfigError(f"{schema.dotted(parts)} is a table of settings; set one of them")
        raise ConfigError(f"unknown setting {schema.dotted(parts)}{schema.suggest(parts)}")
    value = parse_value(raw_value)
    if setting.check(value) is not None and setting.check(raw_value) is None:
        value = raw_value  # a string setting given something TOML reads as a number or a date
    if (problem := setting.check(value)) is not None:
        raise ConfigError(
            f"invalid value for {schema.dotted(parts)}: it {problem}, not {raw_value!r}; {path} is unchanged"
        )
    with _locked(path):
        document = _read_document(path)
        node: Any = document
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = _new_table(super_table=depth < len(parts) - 2)
                node[part] = child
            elif not isinstance(child, dict):
                raise ConfigError(
                    f"{schema.dotted(parts[: depth + 1])} in {path} is a value, not a table; unset it first"
                )
            node = child
        node[parts[-1]] = value
        _write_document(path, document)
    return path


def unset_value(name: str) -> tuple[Path, bool]:
    """Remove a setting from the config file (back to its default), keeping the rest of the file. Names that are
    not settings can be removed too: that is how a misspelt one goes. Returns the path and whether it was set."""
    path = paths.config_file()
    parts = _parse_name(name)
    with _locked(path):
        document = _read_document(path)
        node: Any = document
        for part in parts[:-1]:
            node = node.get(part)
            if not isinstance(node, dict):
                break
        if not isinstance(node, dict) or parts[-1] not in node:
            if schema.find(parts) is None and not schema.is_section(parts):
                raise ConfigError(f"unknown setting {schema.dotted(parts)}{schema.suggest(parts)}")
            return path, False
        del node[parts[-1]]
        _prune_empty_tables(document, parts[:-1])
        _write_document(path, document)
    return path, True


def _prune_empty_tables(document: Any, table_parts: tuple[str, ...]) -> None:
    """Remove the tables on the way to an unset setting that it left empty, innermost first: an ``[http]`` header
    with nothing under it is noise. A table that still holds a comment stays, since the comment is the user's."""
    from tomlkit.items import Null, Whitespace

    for depth in range(len(table_parts), 0, -1):
        parent: Any = document
        for part in table_parts[: depth - 1]:
            parent = parent[part]
        table = parent[table_parts[depth - 1]]
        body = table.value.body if hasattr(table, "value") and hasattr(table.value, "body") else None
        if len(table) or body is None or not all(isinstance(item, Null | Whitespace) for _key, item in body):
            return
        del parent[table_parts[depth - 1]]


def _parse_name(name: str) -> tuple[str, ...]:
    try:
        return schema.parse_name(name)
    except ValueError as exc:
        raise ConfigError(f'{exc}; write names as in TOML, e.g. cache.threshold or prices."gpt-4.1".input') from None


# tomlkit keeps comments and formatting, which tomllib and tomli_w drop; it is imported only by the commands
# that write the file, never by a command that only reads it.


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Two ``config set`` at once each read, change and write the file: one waits, so neither change is lost."""
    from aicache import files

    with writing(path):
        paths.ensure_private_dir(path.parent)
        with files.FileLock(path.with_name(f".{path.name}.lock")):
            yield


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """A config or key file that cannot be written (read-only, disk full, no permission) is a ``ConfigError``
    naming the file, whichever of its helpers (directory, lock, temporary file) failed; the atomic replace has
    left the old file as it was."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {(exc.strerror or str(exc)).lower()}") from None


def _read_document(path: Path) -> Any:
    import tomlkit
    import tomlkit.exceptions

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}; fix or remove it") from None


def _new_table(*, super_table: bool) -> Any:
    import tomlkit

    return tomlkit.table(is_super_table=super_table)


def _write_document(path: Path, document: Any) -> None:
    import tomlkit

    from aicache import files

    files.write_atomic(path, tomlkit.dumps(document))
