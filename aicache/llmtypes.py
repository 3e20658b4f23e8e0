"""The plain data a conversation with an LLM is made of: a message in, a completion out.

It sits below every layer that handles them (request, cache, providers, flow), so the cache can store an answer
and a request can carry messages without importing the providers that speak the wire protocols.
"""

from __future__ import annotations

from dataclasses import dataclass

#: finish reasons that make an answer complete and so cacheable
COMPLETE_REASONS = frozenset({"stop", "end_turn", "stop_sequence", "exit_0"})


@dataclass(frozen=True)
class Message:
    role: str  # "user" or "assistant"; the system prompt travels separately
    content: str


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
