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

TextSink = Callable[[str], None]

#: finish reasons that make an answer complete and so cacheable
COMPLETE_REASONS = frozenset({"stop", "end_turn", "stop_sequence", "exit_0"})


@dataclass(frozen=True)
class Message:
    role: str  # "user" or "assistant"; the system prompt travels separately
    content: str


@dataclass(frozen=True)
class HttpSettings:
    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    retries: int = 3  # extra attempts after the first, on connection errors, 408, 429 and 5xx
    backoff: float = 0.5  # first backoff in seconds, doubled each attempt, with jitter
    max_retry_after: float = 30.0  # a longer Retry-After is an error, not a wait


@dataclass(frozen=True)
class ProviderRequest:
    model: str
    messages: tuple[Message, ...]
    system: str | None = None
    params: tuple[tuple[str, float | int], ...] = ()  # temperature, top_p, max_tokens, ... (sorted)
    stream: bool = True
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    http: HttpSettings = HttpSettings()


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # provider's own word: "stop", "length", "end_turn", "max_tokens", "exit_0", ...
    model: str
    tokens_in: int | None = None
    tokens_out: int | None = None

    @property
    def complete(self) -> bool:
        return self.finish_reason in COMPLETE_REASONS


class Provider(Protocol):
    name: str

    def complete(self, request: ProviderRequest, on_text: TextSink) -> Completion: ...
