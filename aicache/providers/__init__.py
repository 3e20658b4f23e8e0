"""Providers: which ones exist, where each one's endpoint is, and which key it may be given.

This module stays import-light (no httpx, no provider module) because the exact-hit path resolves the
endpoint, which is part of the cache partition, without ever calling a provider.

Endpoints (``resolve_endpoint``):

* openai: ``--base-url`` > ``OPENAI_BASE_URL`` > ``providers.openai.base_url``.
* ollama: the OpenAI protocol at ``--base-url`` > ``OLLAMA_HOST`` > ``providers.ollama.host``, with ``/v1``
  added; ``OLLAMA_HOST`` may omit the scheme and port, as Ollama allows (``localhost`` means
  ``http://localhost:11434``).
* anthropic: ``--base-url`` > ``providers.anthropic.base_url``.
* command: no endpoint and no key.

Keys: ``--key`` > the key file > the environment (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``); Ollama gets
only an explicit ``--key``. Key safety rule: a stored or environment key is meant for the provider's own
service, so it is sent to another base URL only when ``providers.<name>.send_key_to_custom_base_url`` is true,
or when ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` both come from the environment: the user paired them, so
that pair wins over the key file's OpenAI key, which stays meant for OpenAI. A key stored in the key file under
that exact base URL is always sent to it, and so is ``--key``. A key that exists but is withheld is explained
(``Endpoint.withheld``): the user would otherwise see only the server's 401.

A request to a provider's own service (``is_default_endpoint``) with no key at all is refused before it is sent
(``require_key``): that service can only answer 401, after a round trip. Any other endpoint may need no key (a
local server, a proxy that adds one), so it is sent as it is. A cache hit never reaches a provider: it needs no key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aicache.errors import ConfigError
from aicache.schema import PROVIDERS

if TYPE_CHECKING:
    from aicache.config import Settings
    from aicache.providers.base import Provider

DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
DEFAULT_OLLAMA_HOST = "http://localhost:11434"
OLLAMA_PORT = 11434


def get_provider(name: str, settings: Settings | None = None) -> Provider:
    """The provider called ``name``, configured from ``settings`` (the config file's when not given)."""
    if name in ("openai", "ollama"):
        from aicache.providers.openai import OpenAIProvider

        default_url = _ollama_base_url(DEFAULT_OLLAMA_HOST) if name == "ollama" else DEFAULT_BASE_URLS["openai"]
        return OpenAIProvider(name, default_url)
    if name not in PROVIDERS:
        raise ConfigError(f"unknown provider {name!r}; known providers: {', '.join(PROVIDERS)}")
    if settings is None:
        from aicache import config

        settings = config.load()
    if name == "anthropic":
        from aicache.providers.anthropic import DEFAULT_MAX_TOKENS, AnthropicProvider

        max_tokens = settings.get("providers.anthropic.max_tokens", DEFAULT_MAX_TOKENS)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"providers.anthropic.max_tokens must be a positive integer, not {max_tokens!r}")
        return AnthropicProvider(max_tokens)
    from aicache.providers.command import CommandProvider

    return CommandProvider(settings.provider_settings("command"))


@dataclass(frozen=True)
class Endpoint:
    base_url: str | None
    api_key: str | None = field(default=None, repr=False)
    withheld: str | None = None  # a key exists but is not sent: which one, and the setting that would send it


def resolve_endpoint(
    settings: Settings, provider_name: str, base_url_override: str | None, key_override: str | None
) -> tuple[str | None, str | None]:
    """``(base_url, api_key)`` for ``provider_name`` by the precedence rules in the module docstring."""
    found = endpoint(settings, provider_name, base_url_override, key_override)
    return found.base_url, found.api_key


def endpoint(
    settings: Settings,
    provider_name: str,
    base_url_override: str | None,
    key_override: str | None,
    *,
    stored_keys: bool = True,
) -> Endpoint:
    """The endpoint, the key it may be given, and why a key was withheld, if one was.

    ``stored_keys=False``: the URL and an explicit key only, without reading the key file or the environment's
    keys (a cache hit needs no key, so a damaged key file must not stand in its way).
    """
    explicit_key = key_override or None
    if provider_name == "command":
        return Endpoint(None)
    if provider_name == "ollama":
        host = base_url_override or _env("OLLAMA_HOST") or settings.get("providers.ollama.host")
        return Endpoint(_ollama_base_url(str(host or DEFAULT_OLLAMA_HOST)), explicit_key)
    env_pair = False
    if provider_name == "openai":
        env_pair = not base_url_override and _env("OPENAI_BASE_URL") is not None
        base_url = base_url_override or _env("OPENAI_BASE_URL") or settings.get("providers.openai.base_url")
    elif provider_name == "anthropic":
        base_url = base_url_override or settings.get("providers.anthropic.base_url")
    else:
        raise ConfigError(f"unknown provider {provider_name!r}; known providers: {', '.join(PROVIDERS)}")
    base_url = str(base_url or DEFAULT_BASE_URLS[provider_name]).strip().rstrip("/")
    if explicit_key or not stored_keys:
        return Endpoint(base_url, explicit_key)
    return _stored_or_env_key(settings, provider_name, base_url, env_pair, bool(base_url_override))


def is_default_endpoint(provider_name: str, base_url: str) -> bool:
    """Whether ``base_url`` is the provider's own service (https on its official host)."""
    default = DEFAULT_BASE_URLS.get(provider_name)
    if default is None:
        return False
    ours, theirs = urlsplit(default), urlsplit(base_url)
    return theirs.scheme == "https" and theirs.hostname == ours.hostname


def require_key(provider_name: str, base_url: str, api_key: str | None) -> None:
    """Refuse a request to the provider's own service that has no key, naming the ways to give it one."""
    if not api_key and is_default_endpoint(provider_name, base_url):
        raise ConfigError(
            f"no API key for {provider_name}, so nothing was sent to {base_url}: run `aicache keys set "
            f"{provider_name}`, export {KEY_ENV[provider_name]}, or pass --key"
        )


def _stored_or_env_key(
    settings: Settings, provider_name: str, base_url: str, env_pair: bool, from_flag: bool
) -> Endpoint:
    from aicache import credentials

    bound = credentials.get_key(base_url)
    if bound:
        return Endpoint(base_url, bound)  # the user stored this key for exactly this endpoint
    env_name = KEY_ENV[provider_name]
    env_key = _env(env_name)
    if env_pair and env_key is not None:
        # OPENAI_BASE_URL and OPENAI_API_KEY set together (OpenRouter, vLLM): the user paired them, and that choice
        # is more specific than a key file's OpenAI key, which is meant for OpenAI itself.
        return Endpoint(base_url, env_key)
    stored = credentials.get_key(provider_name)
    key = stored or env_key
    if key is None:
        return Endpoint(base_url)
    if is_default_endpoint(provider_name, base_url):
        return Endpoint(base_url, key)
    # Never hand the user's OpenAI or Anthropic key to some other server unless they said so.
    setting = f"providers.{provider_name}.send_key_to_custom_base_url"
    if settings.get(setting, False) is True:
        return Endpoint(base_url, key)
    return Endpoint(base_url, withheld=_withheld(provider_name, base_url, setting, stored is None, from_flag))


def _withheld(provider_name: str, base_url: str, setting: str, from_env: bool, from_flag: bool) -> str:
    owner = urlsplit(DEFAULT_BASE_URLS[provider_name]).hostname
    origin = KEY_ENV[provider_name] if from_env else f"the key file's {provider_name} key"
    ways = [f"set {setting} = true", f"store a key for this URL (aicache keys set {base_url})", "or pass --key"]
    if from_env and from_flag and provider_name == "openai":
        ways.insert(0, "export OPENAI_BASE_URL instead of --base-url")
    return f"no key sent to {base_url}: {origin} is meant for {owner}; to send one, " + ", ".join(ways)


def _ollama_base_url(host: str) -> str:
    """``http://host:11434/v1`` from an OLLAMA_HOST-style value (scheme, port and ``/v1`` optional)."""
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = "http://" + host
    parts = urlsplit(host)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"invalid Ollama host {host!r}: bad port") from None
    if not parts.hostname:
        raise ConfigError(f"invalid Ollama host {host!r}: no host name")
    if port is None and parts.scheme == "http":
        parts = parts._replace(netloc=f"{parts.netloc}:{OLLAMA_PORT}")
    path = parts.path.rstrip("/")
    return parts._replace(path=path if path.endswith("/v1") else path + "/v1").geturl()


def _env(name: str) -> str | None:
    # An empty variable (OPENAI_API_KEY= in a .env file) means unset, not an empty key.
    value = os.environ.get(name, "").strip()
    return value or None


def endpoint_in_use(settings: Settings, provider_name: str) -> tuple[str, str]:
    """Where requests to ``provider_name`` go when no ``--base-url`` is given, and which setting says so."""
    if provider_name == "command":
        import shlex

        argv = settings.provider_settings("command").get("argv") or []
        return (shlex.join(argv) if argv else "no command set"), "providers.command.argv"
    # An explicit key makes resolve_endpoint skip the key lookup: only the URL is wanted, and reading the key
    # file here would make `config show` fail on a damaged key file.
    base_url, _ = resolve_endpoint(settings, provider_name, None, "unused")
    variable = {"openai": "OPENAI_BASE_URL", "ollama": "OLLAMA_HOST"}.get(provider_name)
    if variable is not None and _env(variable) is not None:
        return str(base_url), f"env {variable}"
    name = "providers.ollama.host" if provider_name == "ollama" else f"providers.{provider_name}.base_url"
    return str(base_url), f"{name} ({settings.source(tuple(name.split('.')))})"
