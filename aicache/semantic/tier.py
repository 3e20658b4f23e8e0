"""The semantic tier: find a stored question that means the same, and let the verifier decide.

The ask flow calls ``lookup`` after an exact miss. Its cost is paid in stages, each only when the previous one
cannot answer:

1. one SQL count on a covering index: a partition with no vector of the current model returns ``skipped``
   without loading anything (no model, no numpy, no hnswlib);
2. a question longer than the embedding model reads (``too_long``) is left to the exact tier: the model reads
   only its first ``max_tokens`` tokens, so two questions that differ after them get the same vector (piped input
   comes first and the question last, so the cut falls on the question). Such a question gets no vector and is
   never a candidate either: ``_judge`` drops candidates too long to have been read whole (stores from before);
3. the question is embedded (``embeddings.py``: ONNX, a few ms once loaded);
4. the nearest entries *of this partition* are found (``index.nearest``: an exact scan in SQLite for small
   partitions, the HNSW index for large ones);
5. the candidates go to the hit decision (``decide.py``: a trained pair model behind exact vetoes); of those it
   accepts, the one it is surest of is served. Cosine similarity alone is not safe, so nothing is served
   without a decision.

The verdicts are returned as plain dicts so the caller can store them with the episode, where ``aicache why``
shows them and ``learn`` calibrates from them. Writers (``index_new_entries``, ``remove_entries``, ``reindex``) keep the
index file in step with SQLite; see ``index.py`` for the watermark and crash safety.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from aicache import db, labels, memory, paths
from aicache.config import Settings
from aicache.errors import StoreError
from aicache.request import exact_key
from aicache.semantic import decide, embeddings, judge
from aicache.semantic import index as vector_index

if TYPE_CHECKING:
    from aicache.semantic.index import VectorIndex

P = ParamSpec("P")
R = TypeVar("R")

CANDIDATES = 5  # nearest entries shown to the hit decision
REEMBED_BATCH = 256


@dataclass(frozen=True)
class SemanticResult:
    """What the semantic tier found for one question."""

    entry_id: int | None  # the entry to serve; None when no candidate was accepted
    similarity: float | None  # of the most similar candidate, accepted or not
    threshold: float | None  # the decision's operating point; None when nothing was judged
    vector: bytes | None  # the question's embedding (float32), to store with a new entry without re-embedding
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # one per candidate, most similar first
    skipped: bool = False  # the partition had no vectors: nothing was loaded
    rebuilt_index: bool = False  # the index file was damaged and has been rebuilt (tell the user once)
    decision: str | None = None  # which hit decision judged the candidates (``Decision.name``), or ``too_long``'s


def _store_errors(func: Callable[P, R]) -> Callable[P, R]:
    """SQLite and file errors leave this module as ``StoreError``, which the ask flow handles and goes on."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except sqlite3.Error as exc:
            raise db.translate(exc) from None
        except OSError as exc:
            raise StoreError(f"vector index: {exc.strerror or exc}") from None

    return wrapper


def model_id(settings: Settings) -> str:
    """The id to store in ``entries.embed_model`` next to a vector from ``embed_question``."""
    return embeddings.model_id(settings)


def too_long(embedder: embeddings.Embedder, question: str) -> str | None:
    """Why ``question`` is for the exact tier only (``memory.EXACT_ONLY`` and the reason), or None: the model
    would not read it whole, and what it leaves unread may be all that tells two questions apart."""
    count = embedder.token_counts([question])[0]
    if count <= embedder.max_tokens:
        return None
    return f"{memory.EXACT_ONLY}question longer than the embedding model reads ({count} tokens > {embedder.max_tokens})"


def embed_question(
    settings: Settings, question: str, on_prepare: Callable[[], None] | None = None
) -> tuple[bytes | None, str | None]:
    """The question's vector as float32 bytes, for ``entries.embedding``, or None and why (``too_long``): such an
    entry is for exact repeats only. ``on_prepare`` as in ``get_embedder``."""
    embedder = embeddings.get_embedder(settings, on_prepare)
    unread = too_long(embedder, question)
    if unread is not None:
        return None, unread
    return bytes(embedder.encode([question])[0].tobytes()), None


def embed_answer(settings: Settings, answer: str) -> bytes:
    """The answer's vector as float32 bytes, for ``entries.answer_embedding`` (the model reads its first
    ``max_tokens`` tokens: an answer's opening says what it is about)."""
    return bytes(embeddings.get_embedder(settings).encode([answer])[0].tobytes())


@_store_errors
def lookup(
    conn: sqlite3.Connection,
    settings: Settings,
    partition_key: str,
    question: str,
    template: str | None = None,
    on_prepare: Callable[[], None] | None = None,
) -> SemanticResult:
    """Serve an entry of ``partition_key`` whose cached answer the hit decision says is right for ``question``.

    ``template`` picks a template's own operating point, when ``learn`` found one; ``on_prepare`` is called if the
    model must first be exported (see ``embeddings.get_embedder``)."""
    model = model_id(settings)
    if vector_index.partition_size(conn, partition_key, model, 1) == 0:
        return SemanticResult(None, None, None, None, skipped=True)  # no decision loaded: nothing to judge
    embedder = embeddings.get_embedder(settings, on_prepare)
    unread = too_long(embedder, question)
    if unread is not None:
        return SemanticResult(None, None, None, None, skipped=True, decision=unread)
    decision = decide.load(settings, template)
    vector = embedder.encode([question])[0]
    found = vector_index.nearest(
        conn,
        vector,
        partition_key,
        model,
        k=int(settings.get("cache.candidates", CANDIDATES)),
        min_similarity=decision.floor,
        load=lambda: _tuned(_index(conn, model, vector.size), settings),
        index=_maybe_tuned(_loaded(conn, model), settings),
        exact_max=int(settings.get("cache.exact_scan_max", vector_index.EXACT_MAX)),
    )
    refused = labels.negatives(conn, exact_key(partition_key, question))
    neighbours = [n for n in found.neighbours if n.entry_id not in refused]  # marked wrong for this question
    verdicts = _judge(conn, decision, embedder, question, partition_key, neighbours, vector)
    if judge.enabled(settings):
        verdicts = judge.decide_gray_zone(conn, settings, question, verdicts)
    accepted = [v for v in verdicts if v["accepted"]]
    served = max(accepted, key=lambda v: v["score"])["entry_id"] if accepted else None
    return SemanticResult(
        entry_id=served,
        similarity=found.neighbours[0].similarity if found.neighbours else None,
        threshold=decision.threshold,
        vector=bytes(vector.tobytes()),
        verdicts=verdicts,
        rebuilt_index=_take_rebuilt(found.index),
        decision=decision.name,
    )


def _judge(
    conn: sqlite3.Connection,
    decision: decide.Decision,
    embedder: embeddings.Embedder,
    question: str,
    partition_key: str,
    neighbours: list[vector_index.Neighbour],
    vector: Any,
) -> list[dict[str, Any]]:
    if not neighbours:
        return []
    marks = ",".join("?" * len(neighbours))
    rows = conn.execute(
        f"SELECT id, question, embedding, answer_embedding FROM entries WHERE partition_key = ? AND id IN ({marks})",
        [partition_key, *(n.entry_id for n in neighbours)],
    ).fetchall()
    questions = {int(r[0]): str(r[1]) for r in rows}
    # deleted (or moved) since the index saw them: never serve across partitions
    present = [n for n in neighbours if n.entry_id in questions]
    # A cached question the model did not read whole (stored before such questions got no vector) is no candidate.
    whole = embeddings.read_whole(embedder, [questions[n.entry_id] for n in present])
    present = [n for n, read in zip(present, whole, strict=True) if read]
    if not present:
        return []
    stored = {int(r[0]): r[2] for r in rows}
    vectors = _vectors(vector, [stored[n.entry_id] for n in present])
    answers = {int(r[0]): answer_vector(vector, r[3]) for r in rows}
    judged = decision.judge(
        question,
        [(questions[n.entry_id], n.similarity) for n in present],
        vectors,
        [answers[n.entry_id] for n in present],
    )
    return [
        {
            "entry_id": n.entry_id,
            "question": questions[n.entry_id],
            "similarity": round(n.similarity, 4),
            "score": round(j.score, 4),
            "threshold": round(decision.threshold if j.threshold is None else j.threshold, 4),
            "accepted": j.accepted,
            "reasons": list(j.reasons),
            "gray_zone": j.gray_zone,
        }
        for n, j in zip(present, judged, strict=True)
    ]


def answer_vector(vector: Any, blob: bytes | None) -> Any:
    """A cached answer's unit vector, or None (stored before answers had one, or by another model's size)."""
    import numpy as np

    if blob is None or len(blob) != vector.size * 4:
        return None
    return np.frombuffer(blob, dtype=np.float32)


def _vectors(vector: Any, stored: list[bytes | None]) -> Any:
    """The question's vector and each candidate's, as stored with its entry (what a decision may weigh besides
    the similarity); None if one is missing, and the decision embeds the texts itself."""
    import numpy as np

    blobs = [blob for blob in stored if blob is not None and len(blob) == vector.size * 4]
    if len(blobs) < len(stored):
        return None
    return np.vstack([vector, *(np.frombuffer(blob, dtype=np.float32) for blob in blobs)])


# ---------------------------------------------------------------------------------------------------------
# The index of this process: loaded once, caught up on every use

_OPEN: dict[tuple[str, str, str], VectorIndex] = {}
_OPEN_LOCK = threading.Lock()


def _key(conn: sqlite3.Connection, model: str) -> tuple[str, str, str]:
    """Which store and model an index belongs to. The store's id, not only its path: a store replaced at the
    same path (moved aside when corrupt, deleted by hand) starts its change log again, so an index held from the
    old one must not be caught up with the new one's log (the warm helper lives for many commands)."""
    return str(conn.execute("PRAGMA database_list").fetchone()[2]), db.store_id(conn), model


def _loaded(conn: sqlite3.Connection, model: str) -> VectorIndex | None:
    """The index this process already holds, caught up with SQLite; None if it has none (or it fell behind)."""
    key = _key(conn, model)
    with _OPEN_LOCK:
        index = _OPEN.get(key)
        if index is not None and not index.catch_up(conn):
            del _OPEN[key]  # the log was pruned past it: reload the file
            return None
        return index


def _index(conn: sqlite3.Connection, model: str, dim: int) -> VectorIndex:
    key = _key(conn, model)
    with _OPEN_LOCK:
        index = _OPEN.get(key) or vector_index.open_index(conn, model, dim)
        _OPEN[key] = index
        return index


def _tuned(index: VectorIndex, settings: Settings) -> VectorIndex:
    index.ef_search = int(settings.get("index.ef_search", vector_index.EF_SEARCH))
    return index


def _maybe_tuned(index: VectorIndex | None, settings: Settings) -> VectorIndex | None:
    return None if index is None else _tuned(index, settings)


def keep_index_warm(settings: Settings) -> int | None:
    """Hold the store's index in this process, and nothing else, caught up with SQLite, once the store has
    vectors; returns the vectors held, or None.

    For the warm helper, which serves one store, between forks: each child then starts with the index in memory
    (copy-on-write) and replays only the changes since, instead of loading the file (0.26 s at 100,000 entries)
    or, for a partition small enough to scan, reading every vector of it from SQLite (the scan then runs over the
    vectors in memory, ``VectorIndex.exact``). It uses its own read-only connection, closed before returning, so
    no connection crosses a fork.
    """
    if not settings.get("cache.semantic", True) or not paths.db_path().exists():
        return None
    model = model_id(settings)
    conn = db.connect(readonly=True)
    try:
        key = _key(conn, model)
        with _OPEN_LOCK:
            held = _OPEN.pop(key, None)
            _OPEN.clear()  # anything else is from a store replaced since, or another model's: not this store's now
            if held is None or not held.catch_up(conn):
                dim = vector_index.stored_dim(conn, model)
                held = None if dim is None else vector_index.load_sound(conn, model, dim)
            if held is not None:
                _OPEN[key] = held
            return held.count if held is not None else None
    finally:
        conn.close()


def forget_indexes() -> None:
    """Drop every index this process holds (the next lookup loads the file again)."""
    with _OPEN_LOCK:
        _OPEN.clear()


def _take_rebuilt(index: VectorIndex | None) -> bool:
    """Report a rebuild once per process, however many lookups use the rebuilt index."""
    if index is None or not index.rebuilt:
        return False
    index.rebuilt = False
    return True


# ---------------------------------------------------------------------------------------------------------
# Writers


@_store_errors
def index_new_entries(conn: sqlite3.Connection, settings: Settings) -> bool:
    """Bring the index file up to SQLite after entries with vectors were committed (no model is loaded).

    Small stores get the file rewritten every time; large ones when ``index.save_lag`` records are pending,
    because readers replay the rest from the log in milliseconds (see ``index.py``). Returns True when the file
    was found damaged and rebuilt, so the caller can tell the user.
    """
    model = model_id(settings)
    with _OPEN_LOCK:
        loaded = _OPEN.get(_key(conn, model))
    return _take_rebuilt(vector_index.sync(conn, model, loaded=loaded))


@_store_errors
def remove_entries(conn: sqlite3.Connection, settings: Settings, entry_ids: Iterable[int]) -> int:
    """Delete entries (if still there) and rewrite the index file now, their vectors zeroed; returns rows deleted.

    Deleting rows any other way is also caught up (the log triggers fire on every delete), but only at the next
    save; ``forget`` calls this so no vector of a forgotten question stays on disk.
    """
    ids = sorted({int(i) for i in entry_ids})
    deleted = 0
    with db.write_transaction(conn):
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            deleted += conn.execute(f"DELETE FROM entries WHERE id IN ({marks})", chunk).rowcount
    model = model_id(settings)
    with _OPEN_LOCK:
        loaded = _OPEN.get(_key(conn, model))
    vector_index.sync(conn, model, force=True, loaded=loaded)
    return deleted


@_store_errors
def reindex(conn: sqlite3.Connection, settings: Settings, progress: Callable[[int, int], None] | None = None) -> int:
    """Re-embed entries stored under another model, then rebuild the index from SQLite; returns vectors indexed.

    Entries whose question the model cannot read whole (``too_long``) lose their vector instead: they are for
    exact repeats only. An entry stored before answers had vectors gets its answer's. ``progress(done, total)``
    counts re-embedded entries, then indexed vectors, as one sequence.
    """
    embedder = embeddings.get_embedder(settings)
    _drop_unread_vectors(conn, embedder)
    stale = conn.execute(
        """SELECT id, question, answer, embed_model = ? FROM entries WHERE embed_model IS NOT NULL
            AND (embed_model != ? OR answer_embedding IS NULL) ORDER BY id""",
        (embedder.model_id, embedder.model_id),
    ).fetchall()
    # an entry of this model lacks only its answer's vector: its question's is kept, and the index has it already
    indexed_after = vector_index.vector_count(conn, embedder.model_id) + sum(1 for r in stale if not r[3])
    total = len(stale) + indexed_after
    report = progress or (lambda done, total: None)
    for start in range(0, len(stale), REEMBED_BATCH):
        batch = stale[start : start + REEMBED_BATCH]
        answers = dict(zip((int(r[0]) for r in batch), embedder.encode([str(r[2]) for r in batch]), strict=True))
        other = [r for r in batch if not r[3]]
        vectors: Any = embedder.encode([str(r[1]) for r in other]) if other else []
        with db.write_transaction(conn):
            conn.executemany(
                "UPDATE entries SET answer_embedding = ? WHERE id = ?",
                [(answers[int(r[0])].tobytes(), int(r[0])) for r in batch if r[3]],
            )
            conn.executemany(
                "UPDATE entries SET embedding = ?, embed_model = ?, answer_embedding = ? WHERE id = ?",
                [
                    (v.tobytes(), embedder.model_id, answers[int(r[0])].tobytes(), int(r[0]))
                    for r, v in zip(other, vectors, strict=True)
                ],
            )
        report(start + len(batch), total)
    embedded = len(stale)
    rebuilt = vector_index.rebuild(
        conn, embedder.model_id, embedder.dim, lambda done, _all: report(embedded + done, total)
    )
    _forget_open(conn, embedder.model_id)
    return rebuilt.count


def _drop_unread_vectors(conn: sqlite3.Connection, embedder: embeddings.Embedder) -> None:
    """Clear the vector of every entry whose question is longer than the model reads (a store from before they
    were kept out), so no index holds them."""
    rows = conn.execute("SELECT id, question FROM entries WHERE embed_model IS NOT NULL ORDER BY id").fetchall()
    unread = []
    for start in range(0, len(rows), REEMBED_BATCH):
        batch = rows[start : start + REEMBED_BATCH]
        whole = embeddings.read_whole(embedder, [str(r[1]) for r in batch])
        unread += [(int(r[0]),) for r, read in zip(batch, whole, strict=True) if not read]
    if unread:
        with db.write_transaction(conn):
            conn.executemany(
                "UPDATE entries SET embedding = NULL, embed_model = NULL, answer_embedding = NULL WHERE id = ?", unread
            )


def _forget_open(conn: sqlite3.Connection, model: str) -> None:
    with _OPEN_LOCK:
        _OPEN.pop(_key(conn, model), None)
