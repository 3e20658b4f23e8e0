"""The HNSW index as a cache of SQLite: watermark replay, deletions, growth, partitions, atomic files.

Real SQLite files and real hnswlib; the vectors are random unit vectors (the index does not care where they come
from; tests about meaning are in test_semantic.py).
"""

from __future__ import annotations

import sqlite3
import uuid

import numpy as np
import pytest

from aicache import db, paths
from aicache.semantic import index

MODEL = "test-model@0000"
DIM = 64


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def insert(conn: sqlite3.Connection, partition: str, vectors: np.ndarray, model: str = MODEL) -> list[int]:
    """Store one entry per vector (committed) and return their ids."""
    ids = []
    with db.write_transaction(conn):
        for vector in vectors:
            row = conn.execute(
                "INSERT INTO entries (exact_key, partition_key, question, answer, embedding, embed_model, created_at)"
                " VALUES (?, ?, ?, 'answer', ?, ?, 0) RETURNING id",
                (uuid.uuid4().hex, partition, f"question {uuid.uuid4().hex[:8]}", vector.tobytes(), model),
            ).fetchone()
            ids.append(int(row[0]))
    return ids


def stored_ids(conn: sqlite3.Connection, model: str = MODEL) -> set[int]:
    rows = conn.execute("SELECT id FROM entries WHERE embed_model = ? AND embedding IS NOT NULL", (model,))
    return {int(r[0]) for r in rows}


def top(idx: index.VectorIndex, vector: np.ndarray) -> index.Neighbour:
    return idx.search(vector, 1)[0]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_sync_saves_the_file_and_records_its_watermark(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    ids = insert(conn, "p", unit(rng, 50))
    saved = index.sync(conn, MODEL, force=True)
    assert saved is not None and paths.index_path().is_file()
    record = index.records(conn)[0]
    assert (record.seq, record.count, record.deleted, record.dim) == (index.log_head(conn), 50, 0, DIM)
    opened = index.open_index(conn, MODEL, DIM)
    assert opened.labels() == set(ids) and not opened.rebuilt
    assert opened.saved_seq == opened.seq == record.seq


def test_entries_committed_after_the_save_are_replayed(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    insert(conn, "p", unit(rng, 20))
    index.sync(conn, MODEL, force=True)
    late = unit(rng, 5)
    late_ids = insert(conn, "p", late)
    opened = index.open_index(conn, MODEL, DIM)
    assert opened.labels() == stored_ids(conn)
    assert top(opened, late[3]).entry_id == late_ids[3]
    assert opened.saved_seq is not None and opened.seq > opened.saved_seq  # replayed in memory, not saved


def test_entries_deleted_after_the_save_are_never_returned(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    vectors = unit(rng, 30)
    ids = insert(conn, "p", vectors)
    index.sync(conn, MODEL, force=True)
    conn.execute(f"DELETE FROM entries WHERE id IN ({','.join(map(str, ids[:5]))})")  # not through aicache
    opened = index.open_index(conn, MODEL, DIM)
    assert opened.labels() == set(ids[5:])
    assert all(n.entry_id not in ids[:5] for v in vectors[:5] for n in opened.search(v, 10))
    assert opened.count == 25


def test_a_reused_id_carries_its_new_vector(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    old, new = unit(rng, 2)
    insert(conn, "p", unit(rng, 10))
    (last,) = insert(conn, "p", old[None])
    index.sync(conn, MODEL, force=True)
    conn.execute("DELETE FROM entries WHERE id = ?", (last,))
    (reused,) = insert(conn, "p", new[None])
    assert reused == last  # SQLite hands out max(rowid) + 1 again
    opened = index.open_index(conn, MODEL, DIM)
    assert top(opened, new) == index.Neighbour(reused, pytest.approx(1.0, abs=1e-5))
    assert top(opened, old).similarity < 0.9


def test_vector_and_model_updates_are_replayed(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    ids = insert(conn, "p", unit(rng, 10))
    index.sync(conn, MODEL, force=True)
    replacement = unit(rng, 1)[0]
    conn.execute("UPDATE entries SET embedding = ? WHERE id = ?", (replacement.tobytes(), ids[0]))
    conn.execute("UPDATE entries SET embed_model = 'another-model' WHERE id = ?", (ids[1],))
    opened = index.open_index(conn, MODEL, DIM)
    assert top(opened, replacement).entry_id == ids[0]
    assert opened.labels() == set(ids) - {ids[1]}


def test_the_index_grows_past_its_capacity(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    insert(conn, "p", unit(rng, 10))
    index.sync(conn, MODEL, force=True)
    many = unit(rng, 1500)
    many_ids = insert(conn, "p", many)
    opened = index.open_index(conn, MODEL, DIM)
    assert len(opened.labels()) == 1510
    index.sync(conn, MODEL, force=True)
    reopened = index.open_index(conn, MODEL, DIM)
    assert reopened.saved_seq == reopened.seq and len(reopened.labels()) == 1510
    assert top(reopened, many[1234]).entry_id == many_ids[1234]


def test_sync_leaves_an_up_to_date_file_alone(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    insert(conn, "p", unit(rng, 10))
    assert index.sync(conn, MODEL) is not None  # first time: there is no file
    before = paths.index_path().stat().st_mtime_ns
    assert index.sync(conn, MODEL) is None
    assert paths.index_path().stat().st_mtime_ns == before
    insert(conn, "p", unit(rng, 1))
    assert index.sync(conn, MODEL) is not None  # a small store is saved on every change


def test_large_stores_are_saved_every_few_changes() -> None:
    assert index.save_lag(100) == 1
    assert index.save_lag(20_000) == 10
    assert index.save_lag(1_000_000) == index.MAX_LAG


def test_removed_vectors_are_zeroed_in_the_file(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    vectors = unit(rng, 20)
    ids = insert(conn, "p", vectors)
    index.sync(conn, MODEL, force=True)
    assert vectors[4].tobytes() in paths.index_path().read_bytes()
    conn.execute("DELETE FROM entries WHERE id = ?", (ids[4],))
    index.sync(conn, MODEL, force=True)
    data = paths.index_path().read_bytes()
    assert vectors[4].tobytes() not in data and vectors[5].tobytes() in data
    reopened = index.open_index(conn, MODEL, DIM)
    assert reopened.labels() == set(ids) - {ids[4]}


def test_lookups_only_return_the_asked_partition(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    query = unit(rng, 1)[0]
    crowd = query + 0.05 * unit(rng, 300)  # partition "a": 300 entries right next to the query
    a_ids = insert(conn, "a", crowd / np.linalg.norm(crowd, axis=1, keepdims=True))
    b_vectors = unit(rng, 20)
    b_ids = insert(conn, "b", b_vectors)
    best_b = b_ids[int(np.argmax(b_vectors @ query))]
    index.sync(conn, MODEL, force=True)
    loaded = index.open_index(conn, MODEL, DIM)
    for exact_max in (1000, 0):  # exact scan in SQLite; the index, where over-fetching finds only "a"
        found = index.nearest(
            conn, query, "b", MODEL, k=3, min_similarity=-1.0, load=lambda: loaded, exact_max=exact_max
        )
        assert found.neighbours[0].entry_id == best_b
        assert {n.entry_id for n in found.neighbours} <= set(b_ids)
        assert (found.index is not None) == (exact_max == 0)
    in_a = index.nearest(conn, query, "a", MODEL, k=5, min_similarity=0.5, load=lambda: loaded, exact_max=0)
    assert len(in_a.neighbours) == 5 and {n.entry_id for n in in_a.neighbours} <= set(a_ids)
    assert index.nearest(conn, query, "c", MODEL, k=5, min_similarity=0.5, load=lambda: loaded).neighbours == []


def test_the_index_path_agrees_with_the_exact_scan(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    vectors = unit(rng, 600)
    insert(conn, "big", vectors[:500])
    insert(conn, "small", vectors[500:])
    index.sync(conn, MODEL, force=True)
    loaded = index.open_index(conn, MODEL, DIM)
    for partition, query in (("big", vectors[10] + 0.1 * vectors[11]), ("small", vectors[550] + 0.1 * vectors[1])):
        query = (query / np.linalg.norm(query)).astype(np.float32)
        exact = index.nearest(conn, query, partition, MODEL, k=5, min_similarity=-1.0, load=lambda: loaded)
        approx = index.nearest(
            conn, query, partition, MODEL, k=5, min_similarity=-1.0, load=lambda: loaded, exact_max=0
        )
        assert [n.entry_id for n in approx.neighbours] == [n.entry_id for n in exact.neighbours]
        assert [n.similarity for n in approx.neighbours] == pytest.approx([n.similarity for n in exact.neighbours])


def test_another_models_index_is_rebuilt_quietly(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    insert(conn, "p", unit(rng, 5))
    index.sync(conn, MODEL, force=True)
    new_ids = insert(conn, "p", unit(rng, 3), model="model-b@1")
    opened = index.open_index(conn, "model-b@1", DIM)
    assert opened.labels() == set(new_ids) and not opened.rebuilt
    assert index.records(conn)[0].model == "model-b@1"
    assert not list(paths.data_dir().glob("index.hnsw.corrupt-*"))


def test_a_reader_repairs_in_memory_while_a_writer_holds_the_lock(
    conn: sqlite3.Connection, rng: np.random.Generator
) -> None:
    ids = insert(conn, "p", unit(rng, 12))
    index.sync(conn, MODEL, force=True)
    path = paths.index_path()
    path.write_bytes(path.read_bytes()[:300])
    with index.WriterLock():  # another process's writer, as far as flock is concerned (its own descriptor)
        opened = index.open_index(conn, MODEL, DIM)
    assert opened.rebuilt and opened.labels() == set(ids)
    assert len(path.read_bytes()) == 300  # left for the writer that holds the lock to repair


def test_the_writer_lock_is_exclusive_between_descriptors() -> None:
    with index.WriterLock(), pytest.raises(BlockingIOError), index.WriterLock(blocking=False):
        pass
    with index.WriterLock(blocking=False):  # released on exit
        pass


def test_a_loaded_index_scans_small_partitions_with_the_latest_vectors(
    conn: sqlite3.Connection, rng: np.random.Generator
) -> None:
    crowd = unit(rng, 400)
    insert(conn, "big", crowd)
    small = insert(conn, "small", unit(rng, 30))
    index.sync(conn, MODEL, force=True)
    loaded = index.open_index(conn, MODEL, DIM)
    moved = crowd[0]  # entry small[0] now points right where the big partition is crowded
    conn.execute("UPDATE entries SET embedding = ? WHERE id = ?", (moved.tobytes(), small[0]))
    (late,) = insert(conn, "small", (crowd[1] + 0.01 * unit(rng, 1))[None])
    assert loaded.catch_up(conn)
    for query, expected in ((moved, small[0]), (crowd[1], late)):
        # min_similarity -1: the over-fetch (mostly "big") is never enough, so the partition is scanned exactly.
        found = index.nearest(conn, query, "small", MODEL, k=3, min_similarity=-1.0, load=lambda: loaded, index=loaded)
        assert found.neighbours[0].entry_id == expected and len(found.neighbours) == 3
        assert {n.entry_id for n in found.neighbours} <= {*small, late}


def test_moving_an_entry_to_another_partition_is_seen(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    vectors = unit(rng, 40)
    ids = insert(conn, "a", vectors)
    index.sync(conn, MODEL, force=True)
    loaded = index.open_index(conn, MODEL, DIM)
    assert index.nearest(conn, vectors[3], "a", MODEL, k=1, min_similarity=0.5, load=lambda: loaded, index=loaded)
    loaded.members(conn, "a")  # cached
    conn.execute("UPDATE entries SET partition_key = 'b' WHERE id = ?", (ids[3],))
    assert loaded.catch_up(conn)
    found = index.nearest(conn, vectors[3], "a", MODEL, k=3, min_similarity=-1.0, load=lambda: loaded, index=loaded)
    assert ids[3] not in {n.entry_id for n in found.neighbours}
    assert ids[3] not in set(loaded.members(conn, "a").tolist())


def _file_backed_rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssFile:"))


def test_a_loaded_index_does_not_keep_its_file_resident(conn: sqlite3.Connection, rng: np.random.Generator) -> None:
    # Checksumming and reading the labels touch every page of the file; a process holding the index (the warm
    # helper, a long-lived library user) should not count the whole file in its RSS on top of hnswlib's copy.
    insert(conn, "p", unit(rng, 3000, dim=384))
    index.sync(conn, MODEL, force=True)
    file_kb = paths.index_path().stat().st_size // 1024
    before = _file_backed_rss_kb()
    loaded = index.open_index(conn, MODEL, 384)
    assert _file_backed_rss_kb() - before < file_kb // 4, f"the {file_kb} kB file stayed mapped in"
    query = unit(rng, 1, dim=384)[0]
    exact = index.nearest(conn, query, "p", MODEL, k=3, min_similarity=-1.0, load=lambda: loaded, index=loaded)
    assert exact.neighbours[0].similarity == pytest.approx(top(loaded, query).similarity, abs=1e-5)
