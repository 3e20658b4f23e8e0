"""Episodic memory: one row per interaction (hit, miss, error, refresh), searchable and summarised.

Episodes are written with plain sqlite3 because a hit writes one too and must stay fast; full-text search and the
summary in ``stats`` use the FTS5 table that migration 1 keeps in sync with triggers.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aicache.db import write_transaction

OUTCOMES = ("exact_hit", "semantic_hit", "miss", "refresh", "bypass", "cache_miss", "error")
HIT_OUTCOMES = ("exact_hit", "semantic_hit")


@dataclass
class Episode:
    question: str
    outcome: str
    provider: str | None = None
    model: str | None = None
    partition_key: str | None = None
    template: str | None = None
    cwd: str | None = None
    repo_root: str | None = None
    repo_head: str | None = None
    input_bytes: int | None = None
    input_hash: str | None = None
    answer: str | None = None
    error: str | None = None
    entry_id: int | None = None
    similarity: float | None = None
    threshold: float | None = None
    verdicts: list[dict[str, Any]] | None = None
    latency_ms: float | None = None
    ttfb_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None
    feedback: str | None = None
    source: str = "cli"
    ts: float = field(default_factory=time.time)

    def row(self) -> dict[str, Any]:
        row = asdict(self)
        row["verdicts"] = json.dumps(self.verdicts) if self.verdicts is not None else None
        return row


def insert(conn: sqlite3.Connection, episode: Episode) -> int:
    """Insert inside the caller's transaction; returns the episode id."""
    row = episode.row()
    columns = ", ".join(row)
    placeholders = ", ".join(f":{name}" for name in row)
    cursor = conn.execute(f"INSERT INTO episodes ({columns}) VALUES ({placeholders})", row)
    return int(cursor.lastrowid or 0)


def record(conn: sqlite3.Connection, episode: Episode) -> int:
    with write_transaction(conn):
        return insert(conn, episode)


def mark_last_hit_wrong(conn: sqlite3.Connection, partition_key: str, question: str, refresh_id: int) -> int | None:
    """``--refresh`` right after a hit says the hit was wrong: note it on that hit's episode."""
    row = conn.execute(
        "SELECT id FROM episodes WHERE partition_key = ? AND question = ? AND outcome IN (?, ?) "
        "AND id < ? ORDER BY id DESC LIMIT 1",
        (partition_key, question, *HIT_OUTCOMES, refresh_id),
    ).fetchone()
    if row is None:
        return None
    conn.execute("UPDATE episodes SET feedback = ? WHERE id = ?", (f"wrong: refreshed by {refresh_id}", row[0]))
    return int(row[0])


def get(conn: sqlite3.Connection, episode_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM episodes WHERE id = ?", (episode_id,)).fetchone()
    return _decoded(row) if row else None


def _decoded(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    if data.get("verdicts"):
        data["verdicts"] = json.loads(data["verdicts"])
    return data


def _fts_query(text: str) -> str:
    # Quote every word so user input such as "c++" or "don't" is never FTS5 syntax.
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"' for w in words)


def search(
    conn: sqlite3.Connection, query: str | None = None, limit: int = 20, outcome: str | None = None
) -> list[dict[str, Any]]:
    """Newest episodes first; ``query`` is full-text over question, answer and error."""
    where, args = [], []
    if query:
        where.append("episodes.id IN (SELECT rowid FROM episodes_fts WHERE episodes_fts MATCH ?)")
        args.append(_fts_query(query))
    if outcome:
        where.append("outcome = ?")
        args.append(outcome)
    sql = "SELECT * FROM episodes"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    return [_decoded(r) for r in conn.execute(sql, (*args, limit))]


@dataclass(frozen=True)
class ModelStats:
    provider: str | None
    model: str | None
    total: int
    exact_hits: int
    semantic_hits: int
    misses: int
    errors: int
    tokens_saved: int  # tokens the hits would have cost, from the entries they replayed
    seconds_saved: float  # provider time the hits would have cost, from the misses that created entries
    cost_saved: float

    @property
    def hit_rate(self) -> float:
        answered = self.exact_hits + self.semantic_hits + self.misses
        return (self.exact_hits + self.semantic_hits) / answered if answered else 0.0


def stats(conn: sqlite3.Connection, since: float | None = None) -> list[ModelStats]:
    """Hit rates and savings per provider and model. Savings are what each replayed entry cost when it was made."""
    rows = conn.execute(
        """
        WITH made AS (
            SELECT entry_id, MAX(latency_ms) AS latency_ms FROM episodes
            WHERE outcome IN ('miss', 'refresh') AND entry_id IS NOT NULL GROUP BY entry_id
        )
        SELECT e.provider, e.model, COUNT(*) AS total,
            SUM(e.outcome = 'exact_hit') AS exact_hits,
            SUM(e.outcome = 'semantic_hit') AS semantic_hits,
            SUM(e.outcome IN ('miss', 'refresh')) AS misses,
            SUM(e.outcome = 'error') AS errors,
            SUM(CASE WHEN e.outcome IN ('exact_hit', 'semantic_hit')
                THEN COALESCE(n.tokens_in, 0) + COALESCE(n.tokens_out, 0) ELSE 0 END) AS tokens_saved,
            SUM(CASE WHEN e.outcome IN ('exact_hit', 'semantic_hit')
                THEN MAX(COALESCE(m.latency_ms, 0) - COALESCE(e.latency_ms, 0), 0) ELSE 0 END) / 1000.0
                AS seconds_saved,
            SUM(CASE WHEN e.outcome IN ('exact_hit', 'semantic_hit') THEN COALESCE(n.cost, 0) ELSE 0 END)
                AS cost_saved
        FROM episodes e
        LEFT JOIN entries n ON n.id = e.entry_id
        LEFT JOIN made m ON m.entry_id = e.entry_id
        WHERE (? IS NULL OR e.ts >= ?)
        GROUP BY e.provider, e.model ORDER BY total DESC
        """,
        (since, since),
    ).fetchall()
    return [ModelStats(**dict(r)) for r in rows]
