"""Cache entries: the exact tier's lookup and the store every tier reads.

An entry is one complete answer to one normalized question in one partition (see ``request.py``). The exact
tier is a unique index on ``exact_key``: one indexed read, no model, no numpy. The semantic tier (``semantic/tier.py``)
finds entries by their stored vectors and returns their ids; both tiers replay the same rows.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from aicache import labels
from aicache.cachekeys import canonical_json
from aicache.llmtypes import Completion
from aicache.request import AskRequest

_ENTRY_COLUMNS = "id, question, answer, provider, model, tokens_in, tokens_out, cost, created_at, partition_key"


@dataclass(frozen=True)
class Entry:
    id: int
    question: str
    answer: str
    provider: str | None
    model: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost: float | None
    created_at: float
    partition_key: str


def _entry(row: sqlite3.Row | None) -> Entry | None:
    return Entry(**dict(row)) if row is not None else None


def lookup_exact(conn: sqlite3.Connection, exact_key: str) -> Entry | None:
    """The entry stored for ``exact_key``, unless its answer is blank or was labelled wrong for that question (the
    negative list: asked again, the new answer replaces it)."""
    row = conn.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE exact_key = ?", (exact_key,)).fetchone()
    entry = _entry(row)
    if entry is None or not servable(entry) or labels.is_negative(conn, exact_key, entry.id):
        return None
    return entry


def servable(entry: Entry) -> bool:
    """False for an empty or blank answer, stored before aicache refused to store one: asked again, the new
    answer replaces it."""
    return bool(entry.answer.strip())


def get_entry(conn: sqlite3.Connection, entry_id: int) -> Entry | None:
    row = conn.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id = ?", (entry_id,)).fetchone()
    return _entry(row)


def note_hit(conn: sqlite3.Connection, entry_id: int) -> None:
    conn.execute("UPDATE entries SET hits = hits + 1, last_hit_at = ? WHERE id = ?", (time.time(), entry_id))


def store(
    conn: sqlite3.Connection,
    request: AskRequest,
    completion: Completion,
    *,
    cost: float | None,
    vector: bytes | None,
    embed_model: str | None,
    answer_vector: bytes | None = None,
) -> int:
    """Insert or replace (``--refresh``) the entry for this request, inside the caller's transaction.
    ``answer_vector``: the answer's embedding, by the model of ``vector``; a replaced answer's goes with it.

    The row keeps its id on replace, so the vector index label stays valid and episodes keep pointing at it.
    """
    if not completion.complete:
        raise ValueError(f"refusing to cache an incomplete answer (finish reason {completion.finish_reason!r})")
    if not completion.text.strip():
        raise ValueError("refusing to cache an empty answer")
    conn.execute(
        "INSERT OR IGNORE INTO partitions (key, spec, created_at) VALUES (?, ?, ?)",
        (request.partition_key, canonical_json(request.partition()), time.time()),
    )
    row = conn.execute(
        """
        INSERT INTO entries (exact_key, partition_key, question, question_norm, answer, provider, model,
            finish_reason, tokens_in, tokens_out, cost, created_at, hits, embedding, embed_model, answer_embedding)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)
        ON CONFLICT (exact_key) DO UPDATE SET
            question = excluded.question, answer = excluded.answer, model = excluded.model,
            finish_reason = excluded.finish_reason, tokens_in = excluded.tokens_in,
            tokens_out = excluded.tokens_out, cost = excluded.cost, created_at = excluded.created_at,
            embedding = COALESCE(excluded.embedding, entries.embedding),
            embed_model = COALESCE(excluded.embed_model, entries.embed_model),
            answer_embedding = excluded.answer_embedding
        RETURNING id
        """,
        (
            request.exact_key,
            request.partition_key,
            request.question,
            request.normalized_question,
            completion.text,
            request.provider,
            completion.model or request.model,
            completion.finish_reason,
            completion.tokens_in,
            completion.tokens_out,
            cost,
            time.time(),
            vector,
            embed_model,
            answer_vector,
        ),
    ).fetchone()
    return int(row[0])


def price(
    prices: dict[str, dict[str, float]], model: str, tokens_in: int | None, tokens_out: int | None
) -> float | None:
    """Estimated USD cost from ``[prices."<model>"] input/output`` (per million tokens), if configured."""
    rates = prices.get(model)
    if not rates or tokens_in is None or tokens_out is None:
        return None
    return (tokens_in * float(rates.get("input", 0)) + tokens_out * float(rates.get("output", 0))) / 1_000_000
