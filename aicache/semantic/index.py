"""The HNSW index over the stored question vectors: a cache of SQLite that can be rebuilt at any time.

One hnswlib file (``paths.index_path()``), cosine space, labels = ``entries.id``, holding the vectors of one
embedding model (``entries.embed_model``). SQLite is the truth; everything here can be thrown away.

**Watermark.** Migration ``m002`` adds ``index_log(seq, entry_id)``, filled by triggers on every insert, vector
update and delete in ``entries``: a change feed that no writer can forget to feed, whether the change came from
the ask flow, ``remove_entries`` or a hand-typed ``DELETE``. An index's watermark is its position in that log.
Catching up replays the log after the watermark: each logged entry is read now and added (or updated) if it has
a vector of the current model, marked deleted otherwise. Only the entry's current state matters, so replaying
a record twice is harmless; this is what makes every crash window below safe.

**Files.** ``meta['index.files']`` describes the file by CRC-32, size, watermark, model, dimension and counts.
Two descriptions are kept, the new one and the previous one, and the new one is committed *before* the rename,
so whatever instant a writer is killed at, the file on disk is one of the two. The log is pruned only up to the
older of the two watermarks. Saving (under the writers' lock, see ``WriterLock``): hnswlib writes a temp file
in the same directory; its size is checked against ``index_file_size()`` (hnswlib ignores write errors, so a
full disk would otherwise leave a short file); the vectors of entries deleted since load are zeroed in it (a
forgotten question leaves no vector behind); fsync; CRC read back; descriptor committed; rename; fsync of the
directory. Any failure removes the temp file, keeps the old index and raises ``StoreError``.

**Opening** needs no lock: the file is opened once, its header is checked against the expected dimension and
graph parameters, its CRC must match a descriptor, and only then is it given to hnswlib through
``/proc/self/fd``, so the checksum and hnswlib read the same inode even if a writer renames a new file in
between, and hnswlib never parses bytes that a writer did not produce and verify (a flipped byte in a link
list could otherwise crash the process). A missing file is rebuilt from SQLite; a damaged or foreign one is
moved aside (one copy kept), rebuilt, saved, and reported once through ``VectorIndex.rebuilt``.

**Save policy.** Rewriting the file costs 0.5-0.8 s at 100,000 entries; replaying a log record at open costs
about half a millisecond. So a writer rewrites the file once the log is ``save_lag(n)`` records ahead of it
(every change below 4,000 entries, at most every ``MAX_LAG``), and readers replay the rest in memory.

**Partitions.** A lookup only returns entries of the asked partition (measured at 100,000 entries in
``benchmarks/bench_scale.py``):

* no index loaded yet and at most ``EXACT_MAX`` vectors in the partition (a bounded count on a covering
  index): an exact scan in SQLite, without loading the index at all (the usual case for pipes and system
  prompts in a one-shot CLI process);
* otherwise the index: the ``OVERFETCH * k`` nearest of the whole index, their partitions checked by primary
  key. Every partition member nearer than the last of them is among them, so this is complete when it found
  ``k``, or when the last one is below the threshold (typical for large partitions, 0.4 ms);
* if not, a partition of at most ``MEMORY_EXACT_MAX`` is scanned exactly in the mapped file (``FileVectors``,
  1-3 ms), and a larger one is searched with hnswlib's label filter (cheap when the partition is large).
  A partition's labels are read once and kept until the index changes; the log also records partition moves.
"""

from __future__ import annotations

import contextlib
import errno
import json
import mmap
import os
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicache import db, files, paths
from aicache.errors import StoreError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

# Graph parameters. Measured on 100k sentence vectors (benchmarks/bench_scale.py): M=16 found the true nearest
# neighbour for 73-84% of queries (ef 64-256), M=32 with ef_construction=200 for 100%, at +8% file size.
INDEX_M = 32  # part of the file format (checked in the header)
EF_CONSTRUCTION = 200
EF_SEARCH = 64
EXACT_MAX = 2000  # partitions up to this size are scanned in SQLite when no index is loaded yet
MEMORY_EXACT_MAX = 10_000  # with the index loaded, partitions up to this size are scanned in the mapped file
MAX_LAG = 32  # log records a file may fall behind before a writer rewrites it
OVERFETCH = 4  # candidates fetched per wanted neighbour before checking partitions
BUILD_BATCH = 4096
META_FILES = "index.files"
META_PRUNED = "index.log_pruned"
CORRUPT_COPIES = 1
_MODEL_CHANGED = "the index holds another model's vectors"

# hnswlib's HierarchicalNSW::saveIndex header, in order.
_HEADER = struct.Struct("<QQQQQQiIQQQdQ")
_LABEL_BYTES = 8
_READ_CHUNK = 16 * 1024 * 1024  # bytes of an index file read at a time (checksum, labels)
_NO_ENTRY_POINT = 0xFFFFFFFF


@dataclass(frozen=True)
class FileRecord:
    """What SQLite knows about one index file: it holds the store's vectors as of log position ``seq``."""

    crc: int
    size: int
    seq: int
    model: str
    dim: int
    count: int  # elements in the file, deleted ones included
    deleted: int


@dataclass(frozen=True)
class Neighbour:
    entry_id: int
    similarity: float


class WriterLock:
    """``flock`` on ``data_dir/index.lock``: one process at a time replays, adds and saves.

    hnswlib is not safe for concurrent add and query, and many shells, pipes and hooks share one store.
    Readers never need it: they load a file that is only ever replaced by rename.
    """

    def __init__(self, *, blocking: bool = True) -> None:
        self.blocking = blocking
        self._lock: files.FileLock | None = None

    def acquire(self) -> bool:
        """Take the lock; False if it is busy and this lock does not wait. ``StoreError`` if it cannot exist."""
        path = paths.data_dir() / "index.lock"
        lock = files.FileLock(path, blocking=self.blocking)
        try:
            paths.ensure_private_dir(path.parent)
            taken = lock.acquire()
        except OSError as exc:
            raise StoreError(
                f"cannot update the vector index: {path.parent} is not writable ({exc.strerror})"
            ) from None
        if taken:
            self._lock = lock
        return taken

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()  # the kernel does the same if the process dies
            self._lock = None

    def __enter__(self) -> WriterLock:
        if not self.acquire():
            raise BlockingIOError("the vector index is being written by another process")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---------------------------------------------------------------------------------------------------------
# The in-memory index


class VectorIndex:
    """An HNSW graph in memory, in step with SQLite up to log position ``seq``."""

    def __init__(self, hnsw: Any, *, model: str, dim: int, seq: int, deleted: int, saved_seq: int | None) -> None:
        self._hnsw = hnsw
        self.model = model
        self.dim = dim
        self.seq = seq
        self.deleted = deleted
        self.saved_seq = saved_seq  # the watermark of the file this was loaded from or saved to
        self.rebuilt = False  # set when a damaged file was replaced; the caller reports it once, then clears it
        self._scrub: set[int] = set()  # labels deleted since load: their vectors are zeroed in the next file
        self._view: FileVectors | None = None  # the verified file's vectors, for exact scans
        self._fresh: dict[int, Vector] = {}  # vectors added or changed since that file was written (unit length)
        self._members: dict[str, Any] = {}  # partition -> its labels; dropped on every change
        self._lock = threading.Lock()  # hnswlib: no add during a query, also between threads
        self.ef_search = EF_SEARCH  # the search's breadth (setting ``index.ef_search``): recall against speed

    @property
    def count(self) -> int:
        """Live (not deleted) vectors."""
        return int(self._hnsw.element_count) - self.deleted

    def labels(self) -> set[int]:
        """The live labels. O(n) calls into hnswlib: for checks and diagnostics, not for lookups."""
        live = set()
        with self._lock:
            for label in self._hnsw.get_ids_list():
                with contextlib.suppress(RuntimeError):  # hnswlib's answer for a deleted label
                    self._hnsw.get_items([label])
                    live.add(int(label))
        return live

    def search(self, vector: Vector, k: int, allowed: Callable[[int], bool] | None = None) -> list[Neighbour]:
        """The ``k`` nearest live labels (only those ``allowed`` accepts), most similar first."""
        with self._lock:
            k = min(k, self.count)
            while k > 0:
                self._hnsw.set_ef(max(self.ef_search, k))
                try:
                    labels, distances = self._hnsw.knn_query(vector, k=k, num_threads=1, filter=allowed)
                except RuntimeError:
                    # hnswlib found fewer than k (a filter, deletions, a sparse region): ask for fewer.
                    k //= 2
                    continue
                pairs = zip(labels[0], distances[0], strict=True)
                return [Neighbour(int(label), 1.0 - float(dist)) for label, dist in pairs]
            return []

    def members(self, conn: sqlite3.Connection, partition_key: str) -> Any:
        """The labels of a partition (int64 array), from SQLite, kept until the index next changes.

        The log records every change of an entry's vector, model, id or partition, so an unchanged index means
        unchanged memberships; a long-lived process pays for the query once per partition.
        """
        import numpy as np

        with self._lock:
            cached = self._members.get(partition_key)
        if cached is None:
            cached = np.array(_partition_ids(conn, partition_key, self.model), dtype=np.int64)
            with self._lock:
                self._members[partition_key] = cached
        return cached

    def exact(self, vector: Vector, ids: Sequence[int], k: int) -> list[Neighbour] | None:
        """Exact top ``k`` among ``ids``, from the mapped file and the vectors added since; None without a file."""
        import numpy as np

        if self._view is None:
            return None
        wanted = np.asarray(ids, dtype=np.int64)
        with self._lock:
            fresh = np.isin(wanted, np.fromiter(self._fresh, dtype=np.int64, count=len(self._fresh)))
            labels, matrix = self._view.vectors(wanted[~fresh])
            if fresh.any():
                labels = np.concatenate([labels, wanted[fresh]])
                matrix = np.vstack([matrix, np.stack([self._fresh[int(i)] for i in wanted[fresh]])])
        return _top(labels, matrix, vector, k, unit_rows=True)

    def add(self, ids: Sequence[int], vectors: Vector) -> None:
        """Add or update; a label that was deleted comes back with its new vector."""
        if not len(ids):
            return
        with self._lock:
            if self.deleted:  # an id can come back (SQLite reuses the largest rowid after a delete)
                for label in ids:
                    with contextlib.suppress(RuntimeError):  # raised when the label is absent or not deleted
                        self._hnsw.unmark_deleted(label)
                        self.deleted -= 1
                    self._scrub.discard(label)
            needed = int(self._hnsw.element_count) + len(ids)
            if needed > self._hnsw.get_max_elements():
                self._hnsw.resize_index(max(needed, int(self._hnsw.get_max_elements() * 1.5) + 64))
            self._hnsw.add_items(vectors, list(ids), num_threads=1 if len(ids) < 64 else -1)
            if self._view is not None:
                self._fresh.update(zip(ids, _unit_rows(vectors), strict=True))
            self._members.clear()

    def remove(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._members.clear()
            for label in ids:
                self._fresh.pop(label, None)
                with contextlib.suppress(RuntimeError):  # already deleted, or never indexed
                    self._hnsw.mark_deleted(label)
                    self.deleted += 1
                    self._scrub.add(label)

    def catch_up(self, conn: sqlite3.Connection) -> bool:
        """Replay the log after ``seq``. False when the log no longer reaches back that far (reload the file)."""
        with _read_snapshot(conn):
            if _meta_int(conn, META_PRUNED) > self.seq:
                return False
            rows = conn.execute("SELECT seq, entry_id FROM index_log WHERE seq > ? ORDER BY seq", (self.seq,))
            changes = rows.fetchall()
        if changes:
            ids = sorted({int(r[1]) for r in changes})
            present, vectors = _vectors_of(conn, ids, self.model, self.dim)
            self.add(present, vectors)
            self.remove(sorted(set(ids) - set(present)))
            self.seq = int(changes[-1][0])
        return True

    def save(self, conn: sqlite3.Connection, path: Path | None = None) -> FileRecord:
        """Write the file atomically and record it in SQLite; the caller holds the ``WriterLock``."""
        path = path or paths.index_path()
        try:
            files.remove_stale_temps(path)  # from killed writers: we hold the lock
            # The record is committed before the rename: a crash in between leaves a recorded file that is not
            # in place, which the next open detects and replaces (never a file in place that SQLite disowns).
            with files.replacing(path) as tmp:
                with self._lock:
                    record = self._write(tmp)
                _commit_record(conn, record)
        except OSError as exc:
            raise StoreError(f"could not save the vector index: {_describe(exc)}") from None
        self.saved_seq = record.seq
        self._map(path)
        return record

    def _map(self, path: Path) -> None:
        """Map the file just written for exact scans; what it holds no longer needs a copy in ``_fresh``."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            with self._lock:
                self._view, self._fresh = None, {}  # exact scans fall back to the graph search
            return
        try:
            view = FileVectors(fd, self.dim)
        finally:
            os.close(fd)
        with self._lock:
            self._view, self._fresh = view, {}

    def _write(self, tmp: Path) -> FileRecord:
        # Created here, not by hnswlib: its ofstream reports nothing (a read-only directory would look like a full
        # disk), and the file should be private like the rest of the data directory.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        self._hnsw.save_index(str(tmp))
        expected = int(self._hnsw.index_file_size())
        if not tmp.exists() or tmp.stat().st_size != expected:
            # hnswlib's ofstream ignores write errors: a short file is how a full disk shows up.
            raise OSError(errno.ENOSPC, "short write (disk full or file size limit)")
        with open(tmp, "r+b") as handle:
            if self._scrub:
                _zero_vectors(handle.fileno(), self.dim, self._scrub)
            handle.flush()
            os.fsync(handle.fileno())
            crc = _crc(handle.fileno())
        count = int(self._hnsw.element_count)
        return FileRecord(crc, expected, self.seq, self.model, self.dim, count, self.deleted)


def _describe(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return "the disk is full; the previous index is kept"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{paths.data_dir()} is not writable; the previous index is kept"
    return f"{exc.strerror or exc}; the previous index is kept"


# ---------------------------------------------------------------------------------------------------------
# SQLite side: descriptors, log, vectors


@contextlib.contextmanager
def _read_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction, so reads agree with each other (WAL snapshot); nested use is a no-op."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _meta_int(conn: sqlite3.Connection, key: str) -> int:
    value = _meta(conn, key)
    return int(value) if value else 0


def records(conn: sqlite3.Connection) -> list[FileRecord]:
    """The descriptors of the current and the previous index file, newest first."""
    raw = _meta(conn, META_FILES)
    try:
        return [FileRecord(**item) for item in json.loads(raw)] if raw else []
    except (TypeError, ValueError):
        return []  # an unreadable description: the file will not match and is rebuilt


def log_head(conn: sqlite3.Connection) -> int:
    """The newest log position; AUTOINCREMENT keeps it in ``sqlite_sequence`` even once the rows are pruned."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'index_log'").fetchone()
    return int(row[0]) if row else 0


def _commit_record(conn: sqlite3.Connection, record: FileRecord) -> None:
    with db.write_transaction(conn):
        kept = [record, *records(conn)[:1]]
        prune_to = min(r.seq for r in kept)
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (META_FILES, json.dumps([asdict(r) for r in kept])),
        )
        if prune_to > _meta_int(conn, META_PRUNED):
            conn.execute("DELETE FROM index_log WHERE seq <= ?", (prune_to,))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (META_PRUNED, str(prune_to)))


def stored_dim(conn: sqlite3.Connection, model: str) -> int | None:
    """The dimension of the stored vectors of ``model`` (bytes / 4), or None if it has none."""
    for record in records(conn):
        if record.model == model:
            return record.dim
    row = conn.execute(
        "SELECT length(embedding) FROM entries WHERE embed_model = ? AND embedding IS NOT NULL LIMIT 1", (model,)
    ).fetchone()
    return int(row[0]) // 4 if row else None


def _vectors_of(conn: sqlite3.Connection, ids: Sequence[int], model: str, dim: int) -> tuple[list[int], Vector]:
    """The current vectors of ``ids`` under ``model``; entries without one (or with a malformed one) are left out."""
    import numpy as np

    found: list[int] = []
    blobs: list[bytes] = []
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT id, embedding FROM entries WHERE id IN ({marks}) AND embed_model = ? AND embedding IS NOT NULL",
            (*chunk, model),
        )
        for entry_id, blob in rows:
            if len(blob) == dim * 4:
                found.append(int(entry_id))
                blobs.append(blob)
    return found, np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(found), dim)


def _iter_vectors(conn: sqlite3.Connection, model: str, dim: int) -> Iterator[tuple[list[int], Vector]]:
    import numpy as np

    last = -1
    while True:
        rows = conn.execute(
            "SELECT id, embedding FROM entries WHERE id > ? AND embed_model = ? AND embedding IS NOT NULL "
            "ORDER BY id LIMIT ?",
            (last, model, BUILD_BATCH),
        ).fetchall()
        if not rows:
            return
        last = int(rows[-1][0])
        good = [(int(r[0]), r[1]) for r in rows if len(r[1]) == dim * 4]
        blob = b"".join(b for _, b in good)
        yield [i for i, _ in good], np.frombuffer(blob, dtype=np.float32).reshape(len(good), dim)


def vector_count(conn: sqlite3.Connection, model: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM entries WHERE embed_model = ? AND embedding IS NOT NULL", (model,)
    ).fetchone()
    return int(row[0])


# ---------------------------------------------------------------------------------------------------------
# Files: checks, checksum, scrubbing


def _crc(fd: int) -> int:
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    crc = 0
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as view, memoryview(view) as data:
        for start in range(0, size, _READ_CHUNK):
            crc = zlib.crc32(data[start : start + _READ_CHUNK], crc)
            # Read pages of a map count in the process's RSS (200 MB at 100k): hand them back to the page cache.
            view.madvise(mmap.MADV_DONTNEED, start, min(_READ_CHUNK, size - start))
    return crc


def _header(fd: int) -> tuple[Any, ...] | None:
    raw = os.pread(fd, _HEADER.size, 0)
    return _HEADER.unpack(raw) if len(raw) == _HEADER.size else None


def check_header(fd: int, dim: int) -> str | None:
    """Why the file cannot be an index of ``dim``-dimensional vectors built here, or None if it can be."""
    fields = _header(fd)
    if fields is None:
        return "the file is truncated"
    offset0, _max, count, per_element, label_offset, data_offset, level, entry, max_m, max_m0, m, _mult, _ef = fields
    links0 = max_m0 * 4 + 4
    layout = (offset0, data_offset, label_offset, per_element, max_m, max_m0)
    expected = (0, links0, links0 + dim * 4, links0 + dim * 4 + _LABEL_BYTES, INDEX_M, 2 * INDEX_M)
    if m != INDEX_M or layout != expected:
        return "the file is not an index of this model's vectors (other dimension or format)"
    if (count and (entry >= count or not 0 <= level < 64)) or (not count and entry != _NO_ENTRY_POINT):
        return "the file's header is damaged"
    if os.fstat(fd).st_size < _HEADER.size + count * (per_element + 4):
        return "the file is truncated"
    return None


def _zero_vectors(fd: int, dim: int, labels: set[int]) -> None:
    """Overwrite the vectors of ``labels`` with zeros in a saved file (they stay marked deleted)."""
    import numpy as np

    fields = _HEADER.unpack(os.pread(fd, _HEADER.size, 0))
    count, per_element, label_offset, data_offset = fields[2], fields[3], fields[4], fields[5]
    if not count:
        return
    with mmap.mmap(fd, _HEADER.size + count * per_element) as view:
        level0 = np.frombuffer(view, dtype=np.uint8, offset=_HEADER.size).reshape(count, per_element)
        stored = level0[:, label_offset : label_offset + _LABEL_BYTES].copy().view("<u8").ravel()
        rows = np.nonzero(np.isin(stored, np.fromiter(labels, dtype=np.uint64)))[0]
        level0[rows, data_offset : data_offset + dim * 4] = 0
        del level0  # release the buffer before the map closes
        view.flush()


class FileVectors:
    """The vectors of a verified index file, by label, straight from a read-only map of its bytes.

    An exact scan of a partition needs its vectors; hnswlib's ``get_items`` costs ~45 us a vector and SQLite
    reads one scattered row per vector, while this gathers a few thousand rows of the mapped file in a
    millisecond or two.
    """

    def __init__(self, fd: int, dim: int) -> None:
        import numpy as np

        fields = _HEADER.unpack(os.pread(fd, _HEADER.size, 0))
        count, per_element, label_offset, data_offset = fields[2], fields[3], fields[4], fields[5]
        self._data = slice(data_offset, data_offset + dim * 4)
        self.dim = dim
        self._map: mmap.mmap | None = None
        if count:
            self._map = mmap.mmap(fd, _HEADER.size + count * per_element, access=mmap.ACCESS_READ)
            self._rows = np.frombuffer(self._map, np.uint8, offset=_HEADER.size).reshape(count, per_element)
        else:
            self._rows = np.zeros((0, per_element), dtype=np.uint8)
        labels = self._labels(label_offset, per_element)
        self._order = np.argsort(labels, kind="stable")
        self._sorted = labels[self._order].astype(np.int64)

    def _labels(self, label_offset: int, per_element: int) -> Any:
        """Every row's label. Reading them touches every page of the map; each block read is given back to the
        page cache at once (MADV_DONTNEED), so the process does not keep the whole file resident."""
        import numpy as np

        count = len(self._rows)
        labels = np.empty(count, dtype="<u8")
        step = max(1, _READ_CHUNK // per_element)
        for start in range(0, count, step):
            block = self._rows[start : start + step, label_offset : label_offset + _LABEL_BYTES]
            labels[start : start + len(block)] = block.copy().view("<u8").ravel()
            if self._map is not None:
                self._map.madvise(mmap.MADV_DONTNEED, 0, _HEADER.size + (start + len(block)) * per_element)
        return labels

    def vectors(self, labels: Any) -> tuple[Any, Vector]:
        """(the labels found in the file, their vectors); labels not in the file are left out."""
        import numpy as np

        if not len(self._sorted) or not len(labels):
            return labels[:0], np.zeros((0, self.dim), dtype=np.float32)
        positions = np.minimum(np.searchsorted(self._sorted, labels), len(self._sorted) - 1)
        present = self._sorted[positions] == labels
        rows = self._order[positions[present]]
        return labels[present], self._rows[rows, self._data].view(np.float32)


def _unit_rows(matrix: Vector) -> Vector:
    import numpy as np

    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))[:, None]
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _top(labels: Any, matrix: Vector, vector: Vector, k: int, *, unit_rows: bool = False) -> list[Neighbour]:
    """Cosine top ``k``, as hnswlib computes it (``unit_rows``: the rows are already of unit length)."""
    import numpy as np

    if not len(labels):
        return []
    scores = (matrix if unit_rows else _unit_rows(matrix)) @ (vector / max(float(np.linalg.norm(vector)), 1e-12))
    top = np.argsort(-scores)[:k] if len(scores) <= k else np.argpartition(-scores, k)[:k]
    top = top[np.argsort(-scores[top])]
    return [Neighbour(int(labels[i]), float(scores[i])) for i in top]


# ---------------------------------------------------------------------------------------------------------
# Opening, repairing, building


def _new_hnsw(dim: int, capacity: int) -> Any:
    import hnswlib

    hnsw = hnswlib.Index(space="cosine", dim=dim)
    hnsw.init_index(max_elements=max(capacity, 1024), M=INDEX_M, ef_construction=EF_CONSTRUCTION, random_seed=100)
    hnsw.set_ef(EF_SEARCH)
    return hnsw


def build(
    conn: sqlite3.Connection, model: str, dim: int, progress: Callable[[int, int], None] | None = None
) -> VectorIndex:
    """A fresh in-memory index of every stored vector of ``model`` (nothing is written)."""
    seq = log_head(conn)  # read first: later changes are replayed, and replaying is harmless
    total = vector_count(conn, model)
    index = VectorIndex(_new_hnsw(dim, int(total * 1.25)), model=model, dim=dim, seq=seq, deleted=0, saved_seq=None)
    done = 0
    for ids, vectors in _iter_vectors(conn, model, dim):
        index.add(ids, vectors)
        done += len(ids)
        if progress is not None:
            progress(done, total)
    return index


def _load_file(conn: sqlite3.Connection, path: Path, model: str, dim: int) -> VectorIndex | str | None:
    """The verified file as an index; a string saying why it is unusable; None if it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        problem = check_header(fd, dim)
        if problem is not None:
            return problem
        size, crc = os.fstat(fd).st_size, _crc(fd)
        record = _matching(records(conn), crc, size)
        if record is None:
            return "the file does not match the database's record of it (damaged, or from another store)"
        if record.model != model or record.dim != dim:
            return _MODEL_CHANGED
        return _hnswlib_load(fd, path, record)
    finally:
        os.close(fd)


def _matching(known: list[FileRecord], crc: int, size: int) -> FileRecord | None:
    # Identical bytes can only mean identical contents; the older watermark is the safe one to replay from.
    matches = [r for r in known if r.crc == crc and r.size == size]
    return min(matches, key=lambda r: r.seq) if matches else None


def _hnswlib_load(fd: int, path: Path, record: FileRecord) -> VectorIndex | str:
    import hnswlib

    # Through the descriptor we checksummed, not the path: a writer may have renamed a new file meanwhile.
    source = f"/proc/self/fd/{fd}" if os.path.exists(f"/proc/self/fd/{fd}") else str(path)
    hnsw = hnswlib.Index(space="cosine", dim=record.dim)
    try:
        hnsw.load_index(source, max_elements=int(record.count * 1.25) + 64)
    except (RuntimeError, MemoryError) as exc:
        return f"hnswlib could not read the file ({exc})"
    if int(hnsw.element_count) != record.count:
        return "the file holds a different number of vectors than recorded"
    hnsw.set_ef(EF_SEARCH)
    index = VectorIndex(
        hnsw, model=record.model, dim=record.dim, seq=record.seq, deleted=record.deleted, saved_seq=record.seq
    )
    index._view = FileVectors(fd, record.dim)
    return index


def open_index(conn: sqlite3.Connection, model: str, dim: int, *, locked: bool = False) -> VectorIndex:
    """The index of ``model``, loaded from its file and caught up with SQLite, or rebuilt from SQLite.

    ``locked``: the caller holds the ``WriterLock`` (a writer); a reader takes it only to repair the file.
    """
    path = paths.index_path()
    for _attempt in range(3):
        loaded = _load_file(conn, path, model, dim)
        if not isinstance(loaded, VectorIndex):
            return _replace_file(conn, model, dim, loaded, locked=locked)
        if loaded.catch_up(conn):
            return loaded
        # The log was pruned past this file's watermark: a writer saved a newer file meanwhile; load that.
    return _replace_file(conn, model, dim, "the file kept changing while it was read", locked=locked)


def load_sound(conn: sqlite3.Connection, model: str, dim: int) -> VectorIndex | None:
    """The index file loaded and caught up with SQLite; None when there is none or it needs a repair.

    For a process that keeps an index for others (the warm helper): it never writes, and leaves a repair to a
    command, which can tell its user.
    """
    loaded = _load_file(conn, paths.index_path(), model, dim)
    return loaded if isinstance(loaded, VectorIndex) and loaded.catch_up(conn) else None


def _replace_file(conn: sqlite3.Connection, model: str, dim: int, problem: str | None, *, locked: bool) -> VectorIndex:
    """Rebuild from SQLite; save it (moving a damaged file aside) when this process can take the lock."""
    damaged = problem is not None and problem != _MODEL_CHANGED
    if locked:
        return _rebuild_and_save(conn, model, dim, damaged, must_save=True)
    lock = WriterLock(blocking=False)
    try:
        acquired = lock.acquire()
    except StoreError:
        acquired = False  # a read-only data directory
    if not acquired:
        # A writer is busy (it will repair the file), or nobody can write here: serve from memory.
        index = build(conn, model, dim)
        index.rebuilt = damaged
        return index
    try:
        # Re-check under the lock: another process may have repaired the file while we looked.
        loaded = _load_file(conn, paths.index_path(), model, dim)
        if isinstance(loaded, VectorIndex) and loaded.catch_up(conn):
            return loaded
        return _rebuild_and_save(conn, model, dim, damaged, must_save=False)
    finally:
        lock.release()


def _rebuild_and_save(conn: sqlite3.Connection, model: str, dim: int, damaged: bool, *, must_save: bool) -> VectorIndex:
    path = paths.index_path()
    if damaged and path.exists():
        _move_aside(path)
    index = build(conn, model, dim)
    index.rebuilt = damaged
    try:
        index.save(conn, path)
    except StoreError:
        if must_save:
            raise
        # A reader answers from memory all the same; the next writer saves.
    return index


def _move_aside(path: Path) -> Path:
    """Keep the damaged file for inspection (only the latest: the index can always be rebuilt)."""
    older = sorted(path.parent.glob(f"{path.name}.corrupt-*"))
    for old in older[: max(0, len(older) - (CORRUPT_COPIES - 1))]:
        old.unlink()
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    return aside


# ---------------------------------------------------------------------------------------------------------
# Writers


def save_lag(live: int) -> int:
    """How many log records the file may fall behind: none for small stores, ``MAX_LAG`` for large ones."""
    return max(1, min(MAX_LAG, live // 2000))


def sync(
    conn: sqlite3.Connection, model: str, *, force: bool = False, loaded: VectorIndex | None = None
) -> VectorIndex | None:
    """Bring the index file up to SQLite's log (as far as the save policy asks, or fully with ``force``).

    ``loaded``: an index this process already holds, saved instead of loading the file a second time.
    Returns the index when it was opened, None when the file was close enough to leave alone (checked with two
    SQL reads, without loading anything) or the store has never held a vector of ``model``.
    """
    dim = stored_dim(conn, model)
    if dim is None or (not force and _close_enough(conn, model)):
        return None
    with WriterLock():
        reuse = loaded is not None and loaded.model == model and loaded.dim == dim and loaded.catch_up(conn)
        index = loaded if reuse and loaded is not None else open_index(conn, model, dim, locked=True)
        if index.saved_seq != index.seq or index.saved_seq != _newest_record_seq(conn):
            index.save(conn)
    return index


def _newest_record_seq(conn: sqlite3.Connection) -> int | None:
    known = records(conn)
    return known[0].seq if known else None


def _close_enough(conn: sqlite3.Connection, model: str) -> bool:
    with _read_snapshot(conn):
        known = records(conn)
        head = log_head(conn)
    if not known or known[0].model != model or not paths.index_path().exists():
        return False
    return head - known[0].seq < save_lag(known[0].count - known[0].deleted)


def rebuild(
    conn: sqlite3.Connection, model: str, dim: int, progress: Callable[[int, int], None] | None = None
) -> VectorIndex:
    """Build from SQLite and save, under the lock (``reindex``); compacts away deleted slots."""
    with WriterLock():
        index = build(conn, model, dim, progress)
        index.save(conn)
    return index


# ---------------------------------------------------------------------------------------------------------
# Partition search


@dataclass(frozen=True)
class Found:
    neighbours: list[Neighbour]  # most similar first
    index: VectorIndex | None  # the index used, if the partition was too large to scan


def partition_size(conn: sqlite3.Connection, partition_key: str, model: str, limit: int) -> int:
    """Vectors of ``model`` in the partition, counted up to ``limit`` (a covering-index scan)."""
    row = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM entries WHERE partition_key = ? AND embed_model = ? LIMIT ?)",
        (partition_key, model, limit),
    ).fetchone()
    return int(row[0])


def largest_partition(conn: sqlite3.Connection, model: str) -> int:
    """Vectors of ``model`` in its largest partition (a scan of every entry: not for the lookup path)."""
    row = conn.execute(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM entries WHERE embed_model = ? GROUP BY partition_key)", (model,)
    ).fetchone()
    return int(row[0] or 0)


def nearest(
    conn: sqlite3.Connection,
    vector: Vector,
    partition_key: str,
    model: str,
    *,
    k: int,
    min_similarity: float,
    load: Callable[[], VectorIndex],
    index: VectorIndex | None = None,
    exact_max: int = EXACT_MAX,
) -> Found:
    """The ``k`` nearest entries of the partition, most similar first.

    ``index``: the index this process has already loaded, if any; otherwise ``load`` is called only when the
    partition holds more than ``exact_max`` vectors (a smaller one is scanned in SQLite, which is cheaper than
    loading a large index). Entries below ``min_similarity`` may be left out when the index is used, except that
    the best candidate found is kept (its similarity is worth recording even when it is too low).
    """
    if index is None:
        size = partition_size(conn, partition_key, model, exact_max + 1)
        if size == 0:
            return Found([], None)
        if size <= exact_max:
            return Found(_exact(conn, vector, partition_key, model, k), None)
        index = load()
    return Found(_in_index(conn, index, vector, partition_key, model, k, min_similarity), index)


def _exact(conn: sqlite3.Connection, vector: Vector, partition_key: str, model: str, k: int) -> list[Neighbour]:
    import numpy as np

    rows = conn.execute(
        "SELECT id, embedding FROM entries WHERE partition_key = ? AND embed_model = ? AND embedding IS NOT NULL",
        (partition_key, model),
    ).fetchall()
    rows = [r for r in rows if len(r[1]) == vector.size * 4]
    labels = np.array([r[0] for r in rows], dtype=np.int64)
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), vector.size)
    return _top(labels, matrix, vector, k)


def _partition_ids(conn: sqlite3.Connection, partition_key: str, model: str) -> list[int]:
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: a quarter faster than sqlite3.Row over thousands of ids
    rows = cursor.execute("SELECT id FROM entries WHERE partition_key = ? AND embed_model = ?", (partition_key, model))
    return [r[0] for r in rows]


def _in_partition(conn: sqlite3.Connection, ids: list[int], partition_key: str) -> set[int]:
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT id FROM entries WHERE partition_key = ? AND id IN ({marks})", (partition_key, *ids))
    return {int(r[0]) for r in rows}


def _in_index(
    conn: sqlite3.Connection,
    index: VectorIndex,
    vector: Vector,
    partition_key: str,
    model: str,
    k: int,
    min_similarity: float,
) -> list[Neighbour]:
    fetch = max(OVERFETCH * k, 32)
    hits = index.search(vector, fetch)
    if hits:
        members = _in_partition(conn, [h.entry_id for h in hits], partition_key)
        found = [h for h in hits if h.entry_id in members]
        # Every partition member closer than the last hit is among the hits. So the over-fetch is complete when
        # it found k, when it returned the whole index, or when the last hit is already below the threshold.
        if len(found) >= k or len(hits) < fetch or hits[-1].similarity < min_similarity:
            return found[:k]
    # The partition is a small part of the index: scan it exactly if it is small, else filter the graph search.
    ids = index.members(conn, partition_key)
    if len(ids) <= MEMORY_EXACT_MAX:
        scanned = index.exact(vector, ids, k)
        if scanned is not None:
            return scanned
    labels = set(ids.tolist())
    return index.search(vector, k, allowed=labels.__contains__)
