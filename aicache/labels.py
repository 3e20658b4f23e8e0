"""Labels: whether the answer served (or stored) for a question was right, as the user or a check said.

Sources: ``aicache feedback [EPISODE] good|bad``, ``ask --refresh`` right after a hit (that hit was wrong), and
shadow checks. A label names the pair it is about: the asking request's exact key and the stored entry, with the
similarity and the hit decision's score at the time, so ``learn`` can calibrate the decision from them.

A bad label is also the **negative list**: ``is_negative`` / ``negatives`` tell both tiers never to serve that
entry for that question again. Plain sqlite3, one indexed read: the exact-hit path pays for it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from aicache.db import is_row_id
from aicache.errors import UsageError
from aicache.memory import verdict_on
from aicache.request import exact_key

GOOD, BAD = "good", "bad"


@dataclass(frozen=True)
class Label:
    episode_id: int
    entry_id: int | None
    good: bool
    source: str
    similarity: float | None = None
    score: float | None = None
    decision: str | None = None


# A label is about the answer as it was: an entry refreshed since (same id, new answer) is not refused.
_NEGATIVE = (
    "SELECT l.entry_id FROM labels l JOIN entries e ON e.id = l.entry_id AND e.created_at = l.entry_created "
    "WHERE l.exact_key = ? AND l.good = 0"
)


def is_negative(conn: sqlite3.Connection, key: str, entry_id: int) -> bool:
    """True when the answer entry ``entry_id`` holds was labelled wrong for the question of exact key ``key``."""
    return conn.execute(f"{_NEGATIVE} AND l.entry_id = ? LIMIT 1", (key, entry_id)).fetchone() is not None


def negatives(conn: sqlite3.Connection, key: str) -> set[int]:
    """Every entry whose answer was labelled wrong for the question of exact key ``key``."""
    return {int(r[0]) for r in conn.execute(_NEGATIVE, (key,))}


def marked_wrong(conn: sqlite3.Connection, episode: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries the negative list kept from ``episode`` (``why``, ``show``): each bad label of its question made
    before it was asked, about an answer still stored then, as ``{"entry_id", "episode_id", "source"}``."""
    if episode.get("partition_key") is None or episode.get("outcome") in ("refresh", "bypass"):
        return []
    rows = conn.execute(
        "SELECT l.entry_id, l.episode_id, l.source FROM labels l WHERE l.exact_key = ? AND l.good = 0 "
        "AND l.ts < ? AND l.entry_created < ? AND NOT EXISTS (SELECT 1 FROM episodes s WHERE s.entry_id = l.entry_id "
        "AND s.outcome IN ('miss', 'refresh') AND s.id < ? AND s.ts > l.entry_created) ORDER BY l.id",
        (
            exact_key(str(episode["partition_key"]), str(episode["question"])),
            episode["ts"],
            episode["ts"],
            episode["id"],
        ),
    )
    return [{"entry_id": r[0], "episode_id": r[1], "source": r[2]} for r in rows]


def _judged(episode: sqlite3.Row, entry_id: int) -> tuple[float | None, float | None]:
    """The similarity and score the hit decision gave an entry when the episode was asked, from its verdicts."""
    judged = verdict_on(json.loads(episode["verdicts"] or "[]"), entry_id)
    return judged.get("similarity"), judged.get("score")


def label_episode(conn: sqlite3.Connection, episode_id: int, good: bool, source: str) -> Label:
    """Label the answer episode ``episode_id`` showed, inside the caller's transaction.

    A later label of the same episode from the same source replaces the earlier one (the user changed their
    mind). An episode that showed no stored answer (an error, an answer not cached) cannot be labelled.
    """
    episode = _episode(conn, episode_id)
    if episode["entry_id"] is None or episode["partition_key"] is None:
        raise UsageError(f"episode {episode_id} ({episode['outcome']}) stored no answer to label")
    label = label_pair(conn, episode_id, int(episode["entry_id"]), good, source)
    conn.execute("UPDATE episodes SET feedback = ? WHERE id = ?", (GOOD if good else BAD, episode_id))
    return label


def label_pair(conn: sqlite3.Connection, episode_id: int, entry_id: int, good: bool, source: str) -> Label:
    """Label whether entry ``entry_id``'s answer is right for the question episode ``episode_id`` asked (the
    entry it served, or a candidate it refused, as a shadow check judges it); inside the caller's transaction."""
    episode = _episode(conn, episode_id)
    if episode["partition_key"] is None:
        raise UsageError(f"episode {episode_id} ({episode['outcome']}) has no cache partition to label")
    similarity, score = _judged(episode, entry_id)
    created = conn.execute("SELECT created_at FROM entries WHERE id = ?", (entry_id,)).fetchone()
    if created is None:
        raise UsageError(f"the answer of episode {episode_id} is no longer in the cache (forgotten or replaced)")
    label = Label(episode_id, entry_id, good, source, similarity, score, episode["decision"])
    conn.execute(
        "DELETE FROM labels WHERE episode_id = ? AND entry_id = ? AND source = ?", (episode_id, entry_id, source)
    )
    conn.execute(
        "INSERT INTO labels (episode_id, exact_key, entry_id, entry_created, similarity, score, decision, good, "
        "source, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            episode_id,
            exact_key(str(episode["partition_key"]), str(episode["question"])),
            entry_id,
            float(created[0]),
            similarity,
            score,
            label.decision,
            int(good),
            source,
            time.time(),
        ),
    )
    return label


def _episode(conn: sqlite3.Connection, episode_id: int) -> sqlite3.Row:
    if not is_row_id(episode_id):
        raise UsageError(f"no episode {episode_id} (see `aicache log`)")
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row  # this cursor's rows only: the connection's own factory stays as it is
    episode = cursor.execute(
        "SELECT id, question, partition_key, entry_id, outcome, verdicts, decision FROM episodes WHERE id = ?",
        (episode_id,),
    ).fetchone()
    if episode is None:
        raise UsageError(f"no episode {episode_id} (see `aicache log`)")
    return episode


def newest_episode(conn: sqlite3.Connection, cwd: str) -> int:
    """The newest episode asked from directory ``cwd`` that showed a stored answer (what ``feedback`` means by "the
    last answer here"): an error or a ``--cache-only`` miss since then has nothing to label."""
    row = conn.execute(
        "SELECT id FROM episodes WHERE cwd = ? AND entry_id IS NOT NULL AND partition_key IS NOT NULL "
        "ORDER BY id DESC LIMIT 1",
        (cwd,),
    ).fetchone()
    if row is None:
        raise UsageError(f"no answer was recorded in {cwd}; name an episode: aicache feedback EPISODE good|bad")
    return int(row[0])
