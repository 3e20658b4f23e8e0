"""An optional LLM judge for the hit decision's gray zone. Off by default.

A refusal is in the *gray zone* when nothing but the score stood against it: with the trained decision, no exact
veto fired and the score fell less than ``judge.gray_zone`` below the operating point; with the rules, no rule
objected but the wording differs more than the embedding can vouch for. Only those refusals may go to the judge,
and only when no candidate was accepted: a configured (cheap) model is shown the new question, the cached
question and the cached answer and asked whether the answer fully answers the new question. It must reply YES or
NO; anything else, or any failure, counts as NO, because a wrong answer costs more than a miss. Every judged
verdict is recorded on the episode with the judge's model and reply. ``aicache eval`` counts what the judge
would be asked, and lets it rule only with ``--judge``.

    [judge]
    enabled = true
    model = "gpt-4o-mini"      # any model or alias; provider guessed as for -m, or set judge.provider
    max_candidates = 1         # gray-zone candidates judged per lookup (each is one call)
    gray_zone = 0.45           # how far below the operating point a refusal goes to the judge
    timeout = 10               # seconds a ruling may take, retries included; past it, NO
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aicache.config import Settings
from aicache.errors import AicacheError

SYSTEM = (
    "You check a cache of answers. Reply with exactly one word. YES only if the new question asks for the same thing "
    "as the cached question (a rewording: the same goal, language, tool, version, direction and scope) and the "
    "cached answer fully and correctly answers it. NO if the new question asks for something else, even when the "
    "cached answer happens to cover it too, and NO when unsure."
)
TEMPLATE = "New question:\n{question}\n\nCached question:\n{cached}\n\nCached answer:\n{answer}"
REFERENCE = "\n\nA fresh answer to the new question, for reference:\n{reference}"
TIMEOUT = 10.0  # seconds, ``judge.timeout``
MAX_ANSWER_CHARS = 4000  # the judge needs the gist of the answer, not all of it, and this bounds its cost


@dataclass(frozen=True)
class Ruling:
    accepted: bool
    reply: str
    model: str

    @property
    def answered(self) -> bool:
        """The judge said YES or NO: only then is its ruling a label (a failure or any other reply is a NO for
        the ask, but says nothing about the pair)."""
        return said(self.reply) is not None


def said(reply: str) -> bool | None:
    """True for a YES, False for a NO, None for anything else (a failure, a hedge)."""
    word = reply.strip().upper().rstrip(".!")
    return True if word == "YES" else False if word == "NO" else None


def enabled(settings: Settings) -> bool:
    return settings.get("judge.enabled", False) is True


def prompt(question: str, cached_question: str, cached_answer: str, reference: str | None = None) -> str:
    """What the judge model is shown about one pair, under the ``SYSTEM`` message."""
    shown = TEMPLATE.format(question=question, cached=cached_question, answer=cached_answer[:MAX_ANSWER_CHARS])
    return shown if reference is None else shown + REFERENCE.format(reference=reference[:MAX_ANSWER_CHARS])


def rule(
    settings: Settings, question: str, cached_question: str, cached_answer: str, reference: str | None = None
) -> Ruling:
    """Ask the judge model about one pair (``reference``: a fresh answer to compare with, from a shadow check).
    Failures are a NO with the error as the reply."""
    from aicache.aliases import resolve_model
    from aicache.providers import get_provider, resolve_endpoint
    from aicache.providers.base import Message, ProviderRequest

    provider, model = resolve_model(settings, settings.get("judge.model"), settings.get("judge.provider"))
    try:
        base_url, key = resolve_endpoint(settings, provider, None, None)
        request = ProviderRequest(
            model=model,
            messages=(Message("user", prompt(question, cached_question, cached_answer, reference)),),
            system=SYSTEM,
            params=(("max_tokens", 3), ("temperature", 0)),
            stream=False,
            base_url=base_url,
            api_key=key,
            # a ruling slower than the answer it would save is worth nothing: past judge.timeout it is a NO
            http=settings.http.within(float(settings.get("judge.timeout", TIMEOUT))),
        )
        reply = get_provider(provider, settings).complete(request, lambda _text: None).text.strip()
    except AicacheError as exc:
        return Ruling(False, f"judge failed: {exc}", model)
    return Ruling(said(reply) is True, reply[:40], model)


def candidates(verdicts: Sequence[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """The refusals the judge is asked about, nearest first: the first ``judge.max_candidates`` in the gray zone,
    and none when the decision accepted a candidate."""
    if any(v["accepted"] for v in verdicts):
        return []
    return [v for v in verdicts if v.get("gray_zone")][: int(settings.get("judge.max_candidates", 1))]


def decide_gray_zone(
    conn: sqlite3.Connection, settings: Settings, question: str, verdicts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Let the judge rule on the ``candidates`` in turn until it accepts one; records each ruling."""
    if not enabled(settings):
        return verdicts
    for verdict in candidates(verdicts, settings):
        row = conn.execute("SELECT answer FROM entries WHERE id = ?", (verdict["entry_id"],)).fetchone()
        if row is None:
            continue  # forgotten since the lookup read it
        ruling = rule(settings, question, verdict["question"], str(row[0]))
        verdict["judge"] = {"accepted": ruling.accepted, "reply": ruling.reply, "model": ruling.model}
        if ruling.accepted:
            verdict["accepted"] = True
            verdict["reasons"] = [*verdict["reasons"], f"gray zone accepted by the judge ({ruling.model})"]
            break
        verdict["reasons"] = [*verdict["reasons"], f"gray zone refused by the judge ({ruling.model}): {ruling.reply}"]
    return verdicts
