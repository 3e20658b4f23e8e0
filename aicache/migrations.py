"""Append-only schema migrations.

Each migration is a function, applied once, in order; ``PRAGMA user_version`` records how many have run, so the
hot path checks the schema with one pragma and imports sqlite-utils only when there is something to apply.
Never edit or reorder a released migration: add a new one at the end.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from aicache.errors import StoreError

Migration = Callable[[Any], None]  # takes a sqlite_utils.Database


def m001_initial(db: Any) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["partitions"].create({"key": str, "spec": str, "created_at": float}, pk="key")
    db["entries"].create(
        {
            "id": int,
            "exact_key": str,
            "partition_key": str,
            "question": str,
            "question_norm": str,
            "answer": str,
            "provider": str,
            "model": str,
            "finish_reason": str,
            "tokens_in": int,
            "tokens_out": int,
            "cost": float,
            "created_at": float,
            "hits": int,
            "last_hit_at": float,
            "embedding": bytes,
            "embed_model": str,
        },
        pk="id",
        not_null={"exact_key", "partition_key", "question", "answer"},
        defaults={"hits": 0},
    )
    db["entries"].create_index(["exact_key"], unique=True)
    db["entries"].create_index(["partition_key"])
    db["episodes"].create(
        {
            "id": int,
            "ts": float,
            "cwd": str,
            "repo_root": str,
            "repo_head": str,
            "provider": str,
            "model": str,
            "partition_key": str,
            "template": str,
            "question": str,
            "input_bytes": int,
            "input_hash": str,
            "answer": str,
            "error": str,
            "outcome": str,  # exact_hit | semantic_hit | miss | refresh | error | bypass
            "entry_id": int,
            "entry_created": float,  # the labelled answer's version: a refreshed entry keeps its id, not its label
            "similarity": float,
            "threshold": float,
            "verdicts": str,  # JSON: the verifier's and the judge's verdicts
            "latency_ms": float,
            "ttfb_ms": float,
            "tokens_in": int,
            "tokens_out": int,
            "cost": float,
            "feedback": str,  # the user's word, good or bad (the commit hook's record: hook_feedback, m007)
            "source": str,  # cli | hook | library
        },
        pk="id",
    )
    db["episodes"].create_index(["ts"])
    db["episodes"].create_index(["entry_id"])
    db["episodes"].enable_fts(["question", "answer", "error"], create_triggers=True, tokenize="porter")


def m002_index_log(db: Any) -> None:
    """A change feed of entry vectors for the HNSW index (semantic/index.py), and a covering index for partitions.

    Triggers log every insert with a vector, every change of id, partition, vector or model, and every delete of an
    entry that had a vector, whoever makes the change; the index replays the log after its watermark. Entries
    stored before this migration have no log rows: an index file written before it has no descriptor, so it is
    rebuilt.
    """
    db.execute("CREATE TABLE index_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, entry_id INTEGER NOT NULL)")
    db.execute(
        """CREATE TRIGGER entries_index_insert AFTER INSERT ON entries WHEN NEW.embedding IS NOT NULL
        BEGIN INSERT INTO index_log (entry_id) VALUES (NEW.id); END"""
    )
    db.execute(
        """CREATE TRIGGER entries_index_update AFTER UPDATE OF id, partition_key, embedding, embed_model ON entries
        BEGIN
            INSERT INTO index_log (entry_id) VALUES (NEW.id);
            INSERT INTO index_log (entry_id) SELECT OLD.id WHERE OLD.id != NEW.id;
        END"""
    )
    db.execute(
        """CREATE TRIGGER entries_index_delete AFTER DELETE ON entries WHEN OLD.embedding IS NOT NULL
        BEGIN INSERT INTO index_log (entry_id) VALUES (OLD.id); END"""
    )
    db["entries"].create_index(["partition_key", "embed_model"])


def m003_store_id(db: Any) -> None:
    """A random id for this database file (``db.store_id``): a process that keeps state read from a store (the warm
    helper's vector index) tells the store it read from one created later at the same path."""
    import uuid

    db.execute("INSERT INTO meta (key, value) VALUES ('store.id', ?)", [uuid.uuid4().hex])


def m004_hits_reference_answers(db: Any) -> None:
    """An episode of a hit names the episode whose answer it served (``answer_from``) instead of copying it.

    A hit used to copy the whole answer, so a large answer grew the store (and the full-text index) by its size on
    every hit. The reference is to the miss or refresh episode that stored the answer, not to the entry: an entry
    replaced by ``--refresh`` or deleted later leaves the hit's answer as it was served. Deleting that episode
    clears the reference (the hit then has no answer, as the episode it came from). Existing hits whose copy
    equals such an episode's answer are converted. The outcome values are written out: a migration never changes.
    """
    db.execute("ALTER TABLE episodes ADD COLUMN answer_from INTEGER REFERENCES episodes(id) ON DELETE SET NULL")
    db.execute("CREATE INDEX episodes_answer_from ON episodes (answer_from)")
    db.execute(
        """UPDATE episodes SET answer_from = (
            SELECT source.id FROM episodes AS source
            WHERE source.entry_id = episodes.entry_id AND source.outcome IN ('miss', 'refresh')
                AND source.answer = episodes.answer AND source.id < episodes.id
            ORDER BY source.id DESC LIMIT 1
        )
        WHERE outcome IN ('exact_hit', 'semantic_hit') AND entry_id IS NOT NULL AND answer IS NOT NULL"""
    )
    db.execute("UPDATE episodes SET answer = NULL WHERE answer_from IS NOT NULL")


def m005_labels(db: Any) -> None:
    """What the user (or a check) said about an answer, and which hit decision judged each episode.

    A label is about one (question, stored entry) pair: ``exact_key`` is the asking request's exact key (its
    partition and normalised question), so a bad label is also the negative list: that entry is never served
    again for that question, by either tier. ``learn`` calibrates the hit decision from labels with a score.
    """
    db["labels"].create(
        {
            "id": int,
            "episode_id": int,
            "exact_key": str,
            "entry_id": int,
            "entry_created": float,  # the labelled answer's version: a refreshed entry keeps its id, not its label
            "similarity": float,
            "score": float,
            "decision": str,
            "good": int,
            "source": str,  # feedback | refresh | shadow | pairs
            "ts": float,
        },
        pk="id",
        not_null={"exact_key", "good", "source", "ts"},
    )
    db["labels"].create_index(["exact_key", "entry_id"])
    db["labels"].create_index(["episode_id"])
    db["episodes"].add_column("decision", str)


def m006_learn_runs_and_proposals(db: Any) -> None:
    """What ``learn`` did and what it proposed (``aicache.learn.proposals``).

    ``learn_runs``: one row per run, with the ids of the episodes it used (JSON) and a summary of its result (JSON).
    ``proposals``: one row per branch a run created; ``repo`` is the settings folder, ``repo_kind`` says whether it
    is aicache's own repository or a project's ``.aicache/``; ``status`` moves from ``proposed`` to ``applied`` or
    ``rejected``, and from ``applied`` to ``reverted``. Evidence holds aggregates only, never a question or answer.
    """
    db["learn_runs"].create(
        {
            "id": int,
            "started": float,
            "finished": float,
            "command": str,
            "dry_run": int,
            "episode_ids": str,
            "summary": str,
        },
        pk="id",
        not_null={"started", "command"},
        defaults={"dry_run": 0},
    )
    db["proposals"].create(
        {
            "id": int,
            "run_id": int,
            "repo": str,
            "repo_kind": str,
            "branch": str,
            "commit_sha": str,
            "slug": str,
            "created": float,
            "status": str,
            "why": str,
            "evidence": str,
            "applied_sha": str,
            "reverted_sha": str,
            "decided": float,
        },
        pk="id",
        not_null={"repo", "repo_kind", "branch", "commit_sha", "slug", "created", "status", "evidence"},
        foreign_keys=[("run_id", "learn_runs", "id")],
    )
    db["proposals"].create_index(["status"])


def m007_hook_feedback(db: Any) -> None:
    """The commit hook's record gets its own column: ``feedback`` is only the user's word, good or bad.

    post-commit used to store ``{"kept_similarity": ..., "commit": sha}`` as JSON in ``feedback``, where
    ``aicache feedback`` overwrote it (and the hook overwrote the word). Such JSON moves to ``hook_feedback``;
    ``feedback`` then takes the word back from the episode's latest feedback label, if any.
    """
    db.execute("ALTER TABLE episodes ADD COLUMN hook_feedback TEXT")
    db.execute(
        """UPDATE episodes SET hook_feedback = feedback,
            feedback = (
                SELECT CASE good WHEN 1 THEN 'good' ELSE 'bad' END FROM labels
                WHERE labels.episode_id = episodes.id AND labels.source = 'feedback'
                ORDER BY labels.id DESC LIMIT 1
            )
        WHERE json_valid(feedback) AND json_type(feedback) = 'object'"""
    )


def m008_answer_embedding(db: Any) -> None:
    """Each entry keeps its answer's vector beside its question's: the decision that reads the cached answer
    weighs how close a new question is to it. Entries stored before have none (``reindex`` adds it)."""
    db.execute("ALTER TABLE entries ADD COLUMN answer_embedding BLOB")


def m009_courtesy_rekeyed(db: Any) -> None:
    """The exact keys of questions the normalisation now reads without their courtesy ("... please", "thanks!",
    "hey, ...": ``normalize`` step 6), for entries and for the labels that name them, so a labelled-wrong answer
    stays refused. An entry whose new key another entry already holds keeps its old one: the holder is what the
    plain question hits, and the semantic tier still finds the other."""
    from aicache.normalize import normalize_question
    from aicache.request import exact_key

    conn = db.conn
    for entry_id, key, partition, question in conn.execute(
        "SELECT id, exact_key, partition_key, question FROM entries"
    ).fetchall():
        new = exact_key(partition, question)
        if new != key and conn.execute("SELECT 1 FROM entries WHERE exact_key = ?", (new,)).fetchone() is None:
            conn.execute(
                "UPDATE entries SET exact_key = ?, question_norm = ? WHERE id = ?",
                (new, normalize_question(question), entry_id),
            )
    for label_id, key, partition, question in conn.execute(
        "SELECT l.id, l.exact_key, e.partition_key, e.question FROM labels l JOIN episodes e ON e.id = l.episode_id"
        " WHERE e.partition_key IS NOT NULL AND e.question IS NOT NULL"
    ).fetchall():
        new = exact_key(partition, question)
        if new != key:
            conn.execute("UPDATE labels SET exact_key = ? WHERE id = ?", (new, label_id))


MIGRATIONS: list[Migration] = [
    m001_initial,
    m002_index_log,
    m003_store_id,
    m004_hits_reference_answers,
    m005_labels,
    m006_learn_runs_and_proposals,
    m007_hook_feedback,
    m008_answer_embedding,
    m009_courtesy_rekeyed,
]


def ensure_current(conn: sqlite3.Connection, *, readonly: bool = False) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == len(MIGRATIONS):
        return
    if version > len(MIGRATIONS):
        raise StoreError(f"the cache database is from a newer aicache (schema {version}); upgrade aicache")
    if readonly:
        raise StoreError("the cache database needs a schema upgrade but is open read-only")
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have migrated while we waited.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            migration(db)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
