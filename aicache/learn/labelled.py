"""What ``learn`` learns from: labelled (question, cached question) pairs, scored by today's hit decision.

Labels come from the store (``labels``: feedback, ``--refresh`` after a hit, shadow checks) and from the LLM
judge's rulings recorded on the episodes, each joined to the question that was asked and the cached question
whose answer it was about; pairs whose entry has since been forgotten are left out. Labelled pair files
(``--pairs FILE``, the JSONL shapes ``aicache eval`` reads) add more.

Scores are recomputed with the current decision rather than read from the episode: an episode judged by an older
model version carries a score on another scale. A pair whose entry kept its answer's vector is also scored by the
model that reads the cached answer (``answer_score``), so that ``learn`` calibrates that model too.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aicache.config import Settings
    from aicache.semantic.decide import Decision


@dataclass(frozen=True)
class LabelledPair:
    question: str  # what was asked
    cached: str  # the stored question whose answer was (or would be) served
    good: bool  # True: that answer was right for the question
    source: str  # feedback | refresh | shadow | judge | pairs
    ts: float  # when it was labelled (pair files: 0, they have no time)
    kind: str  # the partition kind: the template's name, or "plain"
    episode_id: int | None = None
    similarity: float = 0.0  # filled by ``score``
    score: float = 0.0
    vetoed: bool = False  # an exact rule (numbers, versions, identifiers) refuses it whatever the score
    # the unit vectors of (question, cached), filled by ``score``: a model that weighs directions needs them
    vectors: Any = field(default=None, compare=False, repr=False)
    # the interaction head's logit, filled by ``score`` when the decision model weighs one
    head_logit: float | None = None
    # the entry's answer vector as stored (float32 bytes) and the embedding model that made it (store labels only)
    answer_blob: bytes | None = field(default=None, compare=False, repr=False)
    answer_embedder: str | None = None
    # the score of the model that reads the cached answer, filled by ``score`` when the pair has an answer vector
    answer_score: float | None = None


def from_store(conn: sqlite3.Connection) -> list[LabelledPair]:
    """Every label in the store that names a question and an entry still present, and the LLM judge's rulings
    (``rulings``), oldest first."""
    return sorted([*_labels(conn), *rulings(conn)], key=lambda pair: pair.ts)


def _labels(conn: sqlite3.Connection) -> list[LabelledPair]:
    rows = conn.execute(
        """
        SELECT e.question, n.question, l.good, l.source, l.ts, COALESCE(e.template, 'plain'), l.episode_id,
               n.answer_embedding, n.embed_model
        FROM labels l JOIN episodes e ON e.id = l.episode_id JOIN entries n ON n.id = l.entry_id
        ORDER BY l.ts, l.id
        """
    )
    return [
        LabelledPair(str(q), str(c), bool(g), str(s), float(t), str(k), int(i), answer_blob=a, answer_embedder=m)
        for q, c, g, s, t, k, i, a, m in rows
    ]


def rulings(conn: sqlite3.Connection) -> list[LabelledPair]:
    """The LLM judge's rulings on gray-zone refusals, as each episode recorded them: labels the ask already paid
    for, where the threshold needs them most. Only a YES or a NO counts, about an entry whose answer is still the
    one the judge read; a label in the store about the same episode and entry (the user's word, a shadow check)
    replaces it."""
    import json

    from aicache.semantic.judge import said

    labels = conn.execute("SELECT episode_id, entry_id FROM labels WHERE entry_id IS NOT NULL")
    labelled = {(int(episode), int(entry)) for episode, entry in labels}
    episodes = conn.execute(
        "SELECT id, question, verdicts, ts, COALESCE(template, 'plain') FROM episodes "
        "WHERE verdicts LIKE '%\"judge\"%' ORDER BY ts, id"
    ).fetchall()
    pairs = []
    for episode_id, question, verdicts, ts, kind in episodes:
        for verdict in json.loads(verdicts):
            good = said(str((verdict.get("judge") or {}).get("reply", "")))
            if good is None or (episode_id, verdict["entry_id"]) in labelled:
                continue
            entry = conn.execute(
                "SELECT question, answer_embedding, embed_model, created_at FROM entries WHERE id = ?",
                (verdict["entry_id"],),
            ).fetchone()
            if entry is None or entry[3] > ts:
                continue  # forgotten, or refreshed since: the ruling was about another answer
            pairs.append(
                LabelledPair(
                    str(question),
                    str(entry[0]),
                    good,
                    "judge",
                    float(ts),
                    str(kind),
                    int(episode_id),
                    answer_blob=entry[1],
                    answer_embedder=entry[2],
                )
            )
    return pairs


def from_pair_file(path: Path) -> list[LabelledPair]:
    """Pairs from a labelled file: each stored question with each of its probes (paraphrase good, near-miss bad)."""
    from aicache.semantic import evaluate

    evalset = evaluate.load_pairs(path)
    pairs = []
    for probe, against in zip(evalset.probes, evalset.pairs, strict=True):
        if against < 0 or probe.kind not in (evaluate.PARAPHRASE, evaluate.NEGATIVE):
            continue
        good = probe.kind == evaluate.PARAPHRASE
        pairs.append(LabelledPair(probe.text, evalset.stored[against], good, "pairs", 0.0, "plain"))
    return pairs


def topic_of(pair: LabelledPair) -> str:
    """A stable id of the stored question: pairs of one topic share words, so splits keep a topic together."""
    return hashlib.sha256(pair.cached.strip().lower().encode("utf-8")).hexdigest()


def score(pairs: Sequence[LabelledPair], settings: Settings, decision: Decision) -> list[LabelledPair]:
    """The pairs with today's cosine similarity and decision score (one embedding batch, one scoring pass)."""
    if not pairs:
        return []
    import numpy as np

    from aicache.semantic import embeddings

    embedder = embeddings.get_embedder(settings)
    model_id = embeddings.model_id(settings)
    texts = sorted({t for p in pairs for t in (p.question, p.cached)})
    vectors = dict(zip(texts, embedder.encode(texts), strict=True))
    scored = []
    for pair in pairs:
        both = np.vstack([vectors[pair.question], vectors[pair.cached]])
        similarity = float(both[0] @ both[1])
        judged = decision.at(0.0).judge(pair.question, [(pair.cached, similarity)], both)[0]
        vetoed = not judged.accepted  # at threshold 0 only a rule can refuse
        head = _head_logit(settings, decision, pair)
        answer = _answer_score(decision, pair, both, similarity, model_id)
        scored.append(
            replace(
                pair,
                similarity=similarity,
                score=judged.score,
                vetoed=vetoed,
                vectors=both,
                head_logit=head,
                answer_score=answer,
            )
        )
    return scored


def _answer_score(decision: Decision, pair: LabelledPair, both: Any, similarity: float, model_id: str) -> float | None:
    """The answer model's score for the pair, when the decision has one and the entry's answer vector was made by
    today's embedding model."""
    from aicache.semantic import decide, tier

    reader = decide.answer_reader(decision)
    answer = tier.answer_vector(both[0], pair.answer_blob) if pair.answer_embedder == model_id else None
    if reader is None or answer is None:
        return None
    return reader.at(0.0).judge(pair.question, [(pair.cached, similarity)], both, [answer])[0].score


def _head_logit(settings: Settings, decision: Decision, pair: LabelledPair) -> float | None:
    """The interaction head's logit for the pair, when the decision is a model that weighs one (for the refit)."""
    if not decision.name.startswith("model:"):
        return None
    from aicache.semantic import decision as decision_model

    head_logits = getattr(decision_model.load(settings), "head_logits", None)
    logits = head_logits(pair.question, [pair.cached]) if head_logits is not None else None
    return None if logits is None else float(logits[0])
