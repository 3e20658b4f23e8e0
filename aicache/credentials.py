"""The key file: API keys stored by ``aicache keys set``, one JSON object ``{name: key}``.

A name is a provider ("openai", "anthropic") or an exact base URL ("https://openrouter.ai/api/v1"): a key
stored under a base URL is sent to that endpoint only (see ``providers.resolve_endpoint``).

The file is private from its first byte: it is replaced with ``files.write_atomic`` (a new temporary file
created with mode 0600, flushed to disk and renamed over the old one), so there is never a moment when a key
sits in a world-readable file or a half-written one. A file that is not
a JSON object of strings is an error naming the file, never silently replaced: that would lose the user's keys.
"""

from __future__ import annotations

import json
from pathlib import Path

from aicache import config, files, paths
from aicache.errors import ConfigError, UsageError
from aicache.schema import KEYED_PROVIDERS


def keys_path() -> Path:
    """Where the key file lives (``keys.json`` in the config directory)."""
    return paths.keys_file()


def get_key(name: str) -> str | None:
    """The key stored for a provider or base URL, or None."""
    return _read().get(_normalize(name))


def set_key(name: str, key: str) -> Path:
    """Store ``key`` for a provider or base URL, keeping the other keys; return the file's path.

    Raises ``ConfigError`` for a name no provider reads a key under (as for an unknown provider) and for a key
    file that cannot be read or written, ``UsageError`` for a key that is empty, has spaces or is not ASCII.
    """
    check_name(name)
    key = key.strip()  # a pasted key often brings its newline along
    if not key or any(c.isspace() for c in key):
        raise UsageError("an API key cannot be empty or contain spaces")
    if not (key.isascii() and key.isprintable()):
        # Sent in an HTTP header, which carries ASCII only; undecodable stdin arrives here as lone surrogates.
        raise UsageError("an API key is printable ASCII; this one has other characters (a wrong file or encoding?)")
    keys = _read()
    keys[_normalize(name)] = key
    _write(keys)
    return keys_path()


def check_name(name: str) -> None:
    """Raise ``ConfigError`` unless a key is ever looked up under ``name``: one under a misspelt name is never sent."""
    from urllib.parse import urlsplit

    normalized = _normalize(name)
    if not normalized:
        raise ConfigError("a key needs a provider name or base URL to be stored under")
    if "://" in normalized:
        try:
            parts = urlsplit(normalized)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
        except ValueError:  # a bad port
            valid = False
        if not valid:
            raise ConfigError(
                f"no provider reads a key stored under {name!r}: it is not a valid http:// or https:// base URL"
            )
    elif normalized not in KEYED_PROVIDERS:
        raise ConfigError(
            f"no provider takes a stored key named {name!r}: use {' or '.join(KEYED_PROVIDERS)}, or the base URL "
            "the key is for (aicache keys set https://openrouter.ai/api/v1)"
        )


def delete_key(name: str) -> bool:
    """Remove the key stored for ``name``; return whether there was one."""
    keys = _read()
    if keys.pop(_normalize(name), None) is None:
        return False
    _write(keys)
    return True


def list_keys() -> dict[str, str]:
    """Every stored name with its key masked (``sk-...abcd``), safe to print."""
    return {name: mask(key) for name, key in sorted(_read().items())}


def mask(key: str) -> str:
    """Enough of a key to tell two apart, never enough to use: a short prefix and the last four characters."""
    if len(key) < 16:
        return "****"  # too short to show any of it safely
    prefix = key[: key.index("-") + 1] if "-" in key[:8] else key[:3]
    return f"{prefix}...{key[-4:]}"


def _normalize(name: str) -> str:
    name = name.strip()
    # "https://host/v1/" and "https://host/v1" are the same endpoint
    return name.rstrip("/") if "://" in name else name


def _read() -> dict[str, str]:
    path = keys_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the key file {path}: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"the key file {path} is not valid JSON ({exc}); fix or remove it") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ConfigError(f'the key file {path} must be a JSON object of strings ({{"openai": "sk-..."}})')
    return data


def _write(keys: dict[str, str]) -> None:
    path = keys_path()
    with config.writing(path):
        paths.ensure_private_dir(path.parent)
        files.write_atomic(path, json.dumps(keys, indent=2, sort_keys=True) + "\n", mode=0o600)
