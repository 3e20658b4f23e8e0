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
            "similarity": float,
            "threshold": float,
            "verdicts": str,  # JSON: the verifier's and the judge's verdicts
            "latency_ms": float,
            "ttfb_ms": float,
            "tokens_in": int,
            "tokens_out": int,
            "cost": float,
            "feedback": str,  # e.g. "wrong" after --refresh of a hit
            "source": str,  # cli | hook | library
        },
        pk="id",
    )
    db["episodes"].create_index(["ts"])
    db["episodes"].create_index(["entry_id"])
    db["episodes"].enable_fts(["question", "answer", "error"], create_triggers=True, tokenize="porter")


def m002_index_log(db: Any) -> None:
    """A change feed of entry vectors for the HNSW index (aicache/semantic/index.py), and a covering index for partitions.

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


MIGRATIONS: list[Migration] = [m001_initial, m002_index_log, m003_store_id]


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
