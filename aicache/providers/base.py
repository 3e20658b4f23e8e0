"""The one small interface every provider implements.

A provider turns a ``ProviderRequest`` into a ``Completion``. Text is handed to ``on_text`` as it arrives
(once, whole, when not streaming), so the caller can show it while the provider is still talking. A provider
raises ``ProviderError`` (with the text already delivered in ``partial``) when it cannot deliver a complete
answer; it never returns a truncated answer as if it were complete: ``finish_reason`` says how it ended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

# Re-exported: the providers and their callers name them from here; they live below, in modules the cache and
# the config may import without pulling in the providers.
from aicache.config import HttpSettings
from aicache.llmtypes import COMPLETE_REASONS, Completion, Message

TextSink = Callable[[str], None]

__all__ = ["COMPLETE_REASONS", "Completion", "HttpSettings", "Message", "Provider", "ProviderRequest", "TextSink"]


@dataclass(frozen=True)
class ProviderRequest:
    model: str
    messages: tuple[Message, ...]
    system: str | None = None
    params: tuple[tuple[str, float | int], ...] = ()  # temperature, top_p, max_tokens, ... (sorted)
    stream: bool = True
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    http: HttpSettings = field(default_factory=HttpSettings)


class Provider(Protocol):
    name: str

    def complete(self, request: ProviderRequest, on_text: TextSink) -> Completion: ...
