"""``why``: everything recorded about one episode's cache decision, as data.

The episode keeps the similarity, the threshold and the verifier's verdict on every candidate it considered, so
a hit or a miss can be explained after the fact without re-running the model.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from aicache import cache, labels, memory
from aicache.errors import UsageError
from aicache.memory import Outcome


@dataclass(frozen=True)
class Explanation:
    episode: dict[str, Any]
    entry: cache.Entry | None  # the entry served (hits) or stored (misses)
    partition: dict[str, Any] | None
    candidates: list[dict[str, Any]]  # verifier verdicts, best first
    marked_wrong: list[dict[str, Any]]  # entries the negative list kept from it (``labels.marked_wrong``)

    @property
    def summary(self) -> str:
        outcome = self.episode["outcome"]
        similarity, threshold = self.episode.get("similarity"), self.episode.get("threshold")
        if outcome == Outcome.EXACT_HIT:
            return "exact hit: the same normalized question was cached in the same partition"
        if outcome == Outcome.SEMANTIC_HIT:
            served = memory.verdict_on(self.candidates, self.episode.get("entry_id"))
            if served.get("score") is not None:
                return f"semantic hit: {verdict_reasons(served)} (similarity {similarity:.3f}); no exact rule vetoed it"
            return f"semantic hit: similarity {similarity:.3f} >= threshold {threshold:.3f} and the verifier agreed"
        if outcome == Outcome.ERROR:
            failed = f"error: the ask failed: {self.episode.get('error') or 'no error message was recorded'}"
            return failed + (f"; {len(self.candidates)} candidate(s) were judged first" if self.candidates else "")
        if outcome in (Outcome.REFRESH, Outcome.BYPASS):
            return f"{outcome}: the cache was not consulted"
        unread = exact_only(self.episode)
        if unread is not None:
            return f"{outcome}: no semantic lookup: {unread}"
        if self.marked_wrong and not self.candidates:
            return f"{outcome}: {refusals(self.marked_wrong)}"
        if not self.candidates:
            return f"{outcome}: no cached question in this partition came close enough"
        refused = [c for c in self.candidates if not c.get("accepted")]
        return f"{outcome}: {len(refused)} candidate(s) refused by the hit decision ({self.decision})"

    @property
    def decision(self) -> str:
        """What judged the candidates: ``model:<version>``, ``rules`` or ``cosine`` (episodes before it: rules)."""
        return str(self.episode.get("decision") or "rules")


def exact_only(episode: dict[str, Any]) -> str | None:
    """Why the semantic tier made no lookup for this episode's question, when the question itself was why."""
    decision = str(episode.get("decision") or "")
    if not decision.startswith(memory.EXACT_ONLY):
        return None
    return decision.removeprefix(memory.EXACT_ONLY) + ": exact match only"


def refusals(marked: list[dict[str, Any]]) -> str:
    """The negative list's refusals in words: which entry, and which episode's label marked it wrong."""
    return "; ".join(
        f"cached entry {m['entry_id']} refused: episode {m['episode_id']} marked its answer wrong ({m['source']})"
        for m in marked
    )


def verdict_reasons(verdict: dict[str, Any]) -> str:
    """Why a candidate was accepted or refused, in words: a refusal's reasons, or the score that let it through."""
    reasons = "; ".join(verdict.get("reasons") or [])
    score, threshold = verdict.get("score"), verdict.get("threshold")
    if verdict.get("accepted") and not reasons and score is not None and threshold is not None:
        return f"score {score:.2f} >= threshold {threshold:.2f}"
    return reasons


def explain(conn: sqlite3.Connection, episode_id: int) -> Explanation:
    episode = memory.get(conn, episode_id)
    if episode is None:
        raise UsageError(f"no episode {episode_id} (see `aicache log`)")
    entry = cache.get_entry(conn, episode["entry_id"]) if episode.get("entry_id") else None
    row = conn.execute("SELECT spec FROM partitions WHERE key = ?", (episode.get("partition_key"),)).fetchone()
    partition = json.loads(row[0]) if row else None
    candidates = sorted(episode.get("verdicts") or [], key=lambda c: -(c.get("similarity") or 0))
    return Explanation(episode, entry, partition, candidates, labels.marked_wrong(conn, episode))
