"""Settings: built-in defaults, overlaid by the TOML config file, overlaid by the environment.

The file is only parsed when it exists, and ``tomllib`` is imported only then: most exact hits read no file.
``aicache config set section.key value`` writes through ``save_value``; values are parsed as TOML literals
(``true``, ``0.9``, ``["claude", "-p"]``) and fall back to plain strings.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicache import paths
from aicache.errors import ConfigError
from aicache.providers.base import HttpSettings

DEFAULTS: dict[str, Any] = {
    "provider": "openai",
    "model": "gpt-4o-mini",
    "stream": True,
    "providers": {
        "openai": {"base_url": "https://api.openai.com/v1", "send_key_to_custom_base_url": False},
        "anthropic": {
            "base_url": "https://api.anthropic.com",
            "max_tokens": 4096,
            "send_key_to_custom_base_url": False,
        },
        "ollama": {"host": "http://localhost:11434"},
        "command": {"argv": [], "prompt_via": "stdin", "timeout": 300},
    },
    "aliases": {},  # name -> "model" or "provider/model"
    "prices": {},  # model -> {input = USD per 1M tokens, output = USD per 1M tokens}
    "http": {
        "connect_timeout": 5.0,
        "read_timeout": 120.0,
        "retries": 3,
        "backoff": 0.5,
        "max_retry_after": 30.0,
    },
    "limits": {"max_input_bytes": 1_000_000},
    "cache": {"semantic": True},  # also: threshold, candidates, embedding_model (see README)
    "judge": {"enabled": False, "model": "gpt-4o-mini", "max_candidates": 1},
    "hook": {"timeout": 5.0, "max_diff_bytes": 32_000, "template": "commit-message"},
    "redact": {"patterns": []},
    "helper": {"enabled": True, "idle_minutes": 30},
}


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
    """The merged settings. ``data`` is the whole tree; properties name the parts code reads often."""

    data: dict[str, Any]

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def http(self) -> HttpSettings:
        h = self.data["http"]
        return HttpSettings(
            connect_timeout=float(h["connect_timeout"]),
            read_timeout=float(h["read_timeout"]),
            retries=int(h["retries"]),
            backoff=float(h["backoff"]),
            max_retry_after=float(h["max_retry_after"]),
        )

    def provider_settings(self, provider: str) -> dict[str, Any]:
        value = self.data["providers"].get(provider, {})
        return value if isinstance(value, dict) else {}


def load() -> Settings:
    from aicache.learn.settings_repo import learned_settings

    data = _merge(_merge(DEFAULTS, learned_settings()), read_file(paths.config_file()))
    if model := os.environ.get("AICACHE_MODEL"):
        data["model"] = model
    if provider := os.environ.get("AICACHE_PROVIDER"):
        data["provider"] = provider
    return Settings(data)


def parse_value(text: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def save_value(dotted: str, raw_value: str) -> Path:
    """Set ``dotted`` (e.g. ``providers.openai.base_url``) in the config file, keeping everything else."""
    import tomli_w

    path = paths.config_file()
    data = read_file(path)
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"invalid setting name: {dotted!r}")
    if parts[0] not in DEFAULTS:
        raise ConfigError(f"unknown setting {dotted!r}; known sections: {', '.join(sorted(DEFAULTS))}")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{part!r} in {dotted!r} is a value, not a section")
        node = child
    node[parts[-1]] = parse_value(raw_value)
    paths.ensure_private_dir(path.parent)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
    return path
