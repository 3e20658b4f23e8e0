"""Which provider and model a request goes to.

``-m`` takes a model name or an alias from ``[aliases]`` (``fast = "openai/gpt-4o-mini"``, ``local =
"ollama/llama3.2"``); an alias may name its provider before a slash. Without an explicit provider, a model whose
name starts with ``claude`` goes to Anthropic and anything else to the configured default provider.
"""

from __future__ import annotations

from aicache.config import Settings
from aicache.errors import ConfigError
from aicache.schema import PROVIDERS


def resolve_model(settings: Settings, model: str | None, provider: str | None) -> tuple[str, str]:
    name = model or str(settings.get("model"))
    aliased_provider = None
    alias = settings.get("aliases", {}).get(name)
    if isinstance(alias, str):
        head, slash, tail = alias.partition("/")
        aliased_provider, name = (head, tail) if slash and head in PROVIDERS else (None, alias)
    chosen = provider or aliased_provider
    if chosen is None:
        chosen = "anthropic" if name.startswith("claude") else str(settings.get("provider"))
    if chosen not in PROVIDERS:
        raise ConfigError(f"unknown provider {chosen!r}; known providers: {', '.join(PROVIDERS)}")
    if not name.strip():
        raise ConfigError("no model given: use -m MODEL or `aicache config set model NAME`")
    return chosen, name
