"""A request to ``ask``: what the user asked, and the partition an answer may be reused in.

Partition rule: an answer is reused only for a request with the same provider, base URL,
model, system prompt, template name and version, sampling parameters, and piped/attached content (by hash).
Similarity, exact or semantic, is judged on the question alone, inside one partition. So the same question about
two different diffs never shares an answer, and a long diff never drowns out the short instruction next to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from aicache.cachekeys import content_hash, key_number, versioned_hash
from aicache.llmtypes import Message
from aicache.normalize import normalize_question
from aicache.templates import DEFAULT_PROMPT, Template, without_final_newline

Params = tuple[tuple[str, float | int], ...]


def exact_key(partition_key: str, question: str) -> str:
    """The exact tier's key: the partition and the normalised question (recomputable from an episode)."""
    return versioned_hash({"partition": partition_key, "question": normalize_question(question)})


@dataclass(frozen=True)
class AskRequest:
    question: str
    provider: str
    model: str
    base_url: str | None = None
    system: str | None = None
    input_text: str | None = None  # piped stdin and attached files, already combined and redacted
    template: Template | None = None
    params: Params = ()

    @property
    def effective_system(self) -> str | None:
        if self.system is not None:
            return self.system
        return self.template.system if self.template else None

    def partition(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "base_url": self.base_url,
            "model": self.model,
            "system": self.effective_system,
            "template": self.template.name if self.template else None,
            "template_version": self.template.version if self.template else None,
            "params": {name: key_number(value) for name, value in self.params},  # 0 and 0.0 are one key
            "input": content_hash(self.input_text) if self.input_text is not None else None,
        }

    @cached_property
    def partition_key(self) -> str:
        return versioned_hash(self.partition())

    @cached_property
    def normalized_question(self) -> str:
        return normalize_question(self.question)

    @cached_property
    def exact_key(self) -> str:
        return exact_key(self.partition_key, self.question)

    def user_message(self) -> str:
        if self.template is not None:
            return self.template.render(self.question, self.input_text)
        if self.input_text is None:
            return self.question
        if not self.question:
            return self.input_text
        return DEFAULT_PROMPT.format(input=without_final_newline(self.input_text), question=self.question)

    def messages(self) -> tuple[Message, ...]:
        return (Message("user", self.user_message()),)
