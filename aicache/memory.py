"""Episodic memory: one row per interaction (hit, miss, error, refresh), searchable and summarised.

Episodes are written with plain sqlite3 because a hit writes one too and must stay fast; full-text search and the
summary in ``stats`` use the FTS5 table that migration 1 keeps in sync with triggers.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from aicache.db import is_row_id, write_transaction
from aicache.errors import UsageError


class Outcome(StrEnum):
    """How one ask ended. The values are what the ``episodes.outcome`` column holds: never change one."""

    EXACT_HIT = "exact_hit"  # the same normalized question in the same partition was cached
    SEMANTIC_HIT = "semantic_hit"  # a close enough cached question, accepted by the verifier
    MISS = "miss"  # the provider answered
    REFRESH = "refresh"  # --refresh: the provider answered and the entry was replaced
    BYPASS = "bypass"  # --no-cache: the provider answered, the cache was neither read nor written
    CACHE_MISS = "cache_miss"  # --cache-only and nothing cached
    ERROR = "error"  # the provider failed or the user interrupted


HIT_OUTCOMES = (Outcome.EXACT_HIT, Outcome.SEMANTIC_HIT)
# How ``Episode.decision`` begins when the semantic tier made no lookup because of the question itself (the reason
# follows): such a question is served by the exact tier only.
EXACT_ONLY = "exact only: "


def parse_outcome(text: str) -> Outcome:
    """``text`` as an outcome, or a usage error listing the valid ones (``log --outcome``)."""
    try:
        return Outcome(text)
    except ValueError:
        known = ", ".join(o.value for o in Outcome)
        raise UsageError(f"unknown outcome {text!r}; known outcomes: {known}") from None


@dataclass
class Episode:
    question: str
    outcome: Outcome
    provider: str | None = None
    model: str | None = None
    partition_key: str | None = None
    template: str | None = None
    cwd: str | None = None
    repo_root: str | None = None
    repo_head: str | None = None
    input_bytes: int | None = None
    input_hash: str | None = None
    answer: str | None = None  # None on a hit that references the answer through ``answer_from``
    answer_from: int | None = None  # a hit: the miss or refresh episode whose answer it served
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
    feedback: str | None = None  # the user's word: "good" or "bad" (``aicache feedback``)
    source: str = "cli"
    decision: str | None = None  # which hit decision judged the candidates (``decide.Decision.name``), or EXACT_ONLY
    hook_feedback: dict[str, Any] | None = None  # the commit hook's record: {"kept_similarity", "commit"}
    ts: float = field(default_factory=time.time)

    def row(self) -> dict[str, Any]:
        row = asdict(self)
        row["verdicts"] = json.dumps(self.verdicts) if self.verdicts is not None else None
        row["hook_feedback"] = json.dumps(self.hook_feedback) if self.hook_feedback is not None else None
        return row


def verdict_on(verdicts: list[dict[str, Any]] | None, entry_id: int | None) -> dict[str, Any]:
    """The hit decision's verdict on one entry among an episode's verdicts (``{}`` if it did not judge it)."""
    return next((v for v in verdicts or [] if v.get("entry_id") == entry_id), {})


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


def answer_source(conn: sqlite3.Connection, entry_id: int, answer: str) -> int | None:
    """The episode that stored ``answer`` in entry ``entry_id``: what a hit's episode references (migration 4)."""
    row = conn.execute(
        "SELECT id FROM episodes WHERE entry_id = ? AND outcome IN (?, ?) AND answer = ? ORDER BY id DESC LIMIT 1",
        (entry_id, Outcome.MISS, Outcome.REFRESH, answer),
    ).fetchone()
    return int(row[0]) if row else None


def last_hit(conn: sqlite3.Connection, partition_key: str, question: str) -> int | None:
    """The newest hit episode of this question in this partition (what ``--refresh`` says was wrong)."""
    row = conn.execute(
        "SELECT id FROM episodes WHERE partition_key = ? AND question = ? AND outcome IN (?, ?) "
        "ORDER BY id DESC LIMIT 1",
        (partition_key, question, *HIT_OUTCOMES),
    ).fetchone()
    return int(row[0]) if row is not None else None


# Readers see a hit's answer as if it were copied: it is read from the episode it references.
_SELECT = (
    "SELECT episodes.*, source.answer AS served_answer FROM episodes "
    "LEFT JOIN episodes AS source ON source.id = episodes.answer_from"
)


def get(conn: sqlite3.Connection, episode_id: int) -> dict[str, Any] | None:
    if not is_row_id(episode_id):
        return None
    row = conn.execute(f"{_SELECT} WHERE episodes.id = ?", (episode_id,)).fetchone()
    return _decoded(row) if row else None


def _decoded(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    served = data.pop("served_answer", None)
    if data.get("answer") is None:
        data["answer"] = served
    if data.get("verdicts"):
        data["verdicts"] = json.loads(data["verdicts"])
    if data.get("hook_feedback"):
        data["hook_feedback"] = json.loads(data["hook_feedback"])
    return data


# A query with any of these is FTS5 syntax (`stash OR rebase`, `reb*`, `"exact phrase"`, `NEAR(a b)`); any other
# is plain words, each quoted, so that "c++" or "don't" never trips the FTS5 parser.
_FTS_ERRORS = ("fts5", "syntax error", "unterminated string", "no such column", "unknown special query")
_FTS_SYNTAX = re.compile(r'["*()^]|\b(?:OR|AND|NOT|NEAR)\b')


# Scripts written without spaces between words (Chinese, Japanese, Korean hanja and kana): FTS5's tokenizer reads
# a whole unspaced run as one word, so a word inside it is never matched. A plain query in such a script is matched
# as substrings instead.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CONTAINS = (
    "(instr(episodes.question, ?) > 0 OR instr(coalesce(episodes.answer, ''), ?) > 0"
    " OR instr(coalesce(episodes.error, ''), ?) > 0 OR instr(coalesce(source.answer, ''), ?) > 0)"
)


def fts_query(text: str) -> str:
    """The FTS5 MATCH expression for a ``log -q`` query: as written when it uses FTS5 syntax, else quoted words."""
    if _FTS_SYNTAX.search(text):
        return text
    return " ".join('"' + w.replace('"', '""') + '"' for w in text.split())


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0])


def search(
    conn: sqlite3.Connection, query: str | None = None, limit: int = 20, outcome: Outcome | str | None = None
) -> list[dict[str, Any]]:
    """Newest episodes first; ``query`` is full-text over question, answer and error (FTS5 syntax allowed).

    A hit's answer is indexed once, with the episode it references: a hit matches when that episode's answer does.
    A malformed FTS5 query is a ``UsageError`` naming the query and what FTS5 said.
    """
    where, args = [], []
    if query and not query.strip():
        raise UsageError(f"cannot search for {query!r}: the query is empty")
    if query and _UNSPACED.search(query) and not _FTS_SYNTAX.search(query):
        for word in query.split():  # every word, anywhere in the question, the answer (served or not) or the error
            where.append(_CONTAINS)
            args += [word] * 4
    elif query:
        matched = "SELECT rowid FROM episodes_fts WHERE episodes_fts MATCH ?"
        where.append(f"(episodes.id IN ({matched}) OR episodes.answer_from IN ({matched}))")
        args += [fts_query(query)] * 2
    if outcome:
        where.append("episodes.outcome = ?")
        args.append(parse_outcome(outcome).value)
    sql = _SELECT
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY episodes.id DESC LIMIT ?"
    try:
        return [_decoded(r) for r in conn.execute(sql, (*args, limit))]
    except sqlite3.OperationalError as exc:
        if query and any(word in str(exc) for word in _FTS_ERRORS):
            # FTS5 reads a leading `*` as the name of a debugging query ("unknown special query: " and the word
            # after it, nothing for `*` alone), which says nothing to someone who meant a wildcard.
            detail = "a * ends a word (pre*), it cannot start one" if "special query" in str(exc) else str(exc)
            raise UsageError(
                f'cannot search for {query!r}: {detail} (FTS5 syntax: words, "a phrase", pre*, a OR b, a NOT b, '
                "NEAR(a b))"
            ) from None
        raise


@dataclass(frozen=True)
class ModelStats:
    provider: str | None
    model: str | None
    total: int
    exact_hits: int
    semantic_hits: int
    misses: int  # the provider answered after the cache had nothing
    cache_misses: int  # --cache-only and nothing cached
    refreshes: int  # --refresh: the cache was not looked at
    bypasses: int  # --no-cache: the cache was not looked at
    errors: int  # the sum of these and the hits is total
    tokens_saved: int  # tokens the hits would have cost, from the entries they replayed
    seconds_saved: float  # provider time the hits would have cost, from the misses that created entries
    cost_saved: float | None  # None when no hit's cost is known (no price for the model)
    cost_unknown_hits: int  # hits whose entry's cost is unknown: left out of cost_saved
    judged: int = 0  # lookups the LLM judge ruled on (``judge.enabled``): one call of the judge's model each
    judge_yes: int = 0  # of those, served on its YES (semantic hits it won)

    @property
    def hit_rate(self) -> float:
        """Hits among the asks that looked in the cache and ended without an error (refreshes, --no-cache asks
        and errors are left out)."""
        looked = self.exact_hits + self.semantic_hits + self.misses + self.cache_misses
        return (self.exact_hits + self.semantic_hits) / looked if looked else 0.0


def stats(conn: sqlite3.Connection, since: float | None = None) -> list[ModelStats]:
    """Hit rates and savings per provider and model. Savings are what each replayed entry cost when it was made."""
    rows = conn.execute(
        """
        WITH made AS (
            SELECT entry_id, MAX(latency_ms) AS latency_ms FROM episodes
            WHERE outcome IN (:miss, :refresh) AND entry_id IS NOT NULL GROUP BY entry_id
        ), ruled AS (  -- the LLM judge's part, read once from each episode that recorded a ruling
            SELECT e.id, MAX(json_extract(v.value, '$.judge') IS NOT NULL) AS asked,
                MAX(json_extract(v.value, '$.judge.accepted') = 1) AS yes
            FROM episodes e, json_each(e.verdicts) v
            WHERE e.verdicts LIKE '%"judge"%' AND json_valid(e.verdicts) GROUP BY e.id
        )
        SELECT e.provider, e.model, COUNT(*) AS total,
            SUM(e.outcome = :exact_hit) AS exact_hits,
            SUM(e.outcome = :semantic_hit) AS semantic_hits,
            SUM(e.outcome = :miss) AS misses,
            SUM(e.outcome = :cache_miss) AS cache_misses,
            SUM(e.outcome = :refresh) AS refreshes,
            SUM(e.outcome = :bypass) AS bypasses,
            SUM(e.outcome = :error) AS errors,
            SUM(CASE WHEN e.outcome IN (:exact_hit, :semantic_hit)
                THEN COALESCE(n.tokens_in, 0) + COALESCE(n.tokens_out, 0) ELSE 0 END) AS tokens_saved,
            SUM(CASE WHEN e.outcome IN (:exact_hit, :semantic_hit)
                THEN MAX(COALESCE(m.latency_ms, 0) - COALESCE(e.latency_ms, 0), 0) ELSE 0 END) / 1000.0
                AS seconds_saved,
            SUM(CASE WHEN e.outcome IN (:exact_hit, :semantic_hit) THEN n.cost END) AS cost_saved,
            COALESCE(SUM(e.outcome IN (:exact_hit, :semantic_hit) AND n.cost IS NULL), 0) AS cost_unknown_hits,
            COALESCE(SUM(r.asked), 0) AS judged,
            COALESCE(SUM(r.yes), 0) AS judge_yes
        FROM episodes e
        LEFT JOIN entries n ON n.id = e.entry_id
        LEFT JOIN made m ON m.entry_id = e.entry_id
        LEFT JOIN ruled r ON r.id = e.id
        WHERE (:since IS NULL OR e.ts >= :since)
        GROUP BY e.provider, e.model ORDER BY total DESC
        """,
        {"since": since, **{o.name.lower(): o.value for o in Outcome}},
    ).fetchall()
    return [_model_stats(dict(r)) for r in rows]


def _model_stats(row: dict[str, Any]) -> ModelStats:
    # A SUM of no known cost is NULL: unknown when there were hits, nothing saved when there were none.
    if row["cost_saved"] is None and not row["cost_unknown_hits"]:
        row["cost_saved"] = 0.0
    return ModelStats(**row)
