"""Configuration search: replay the user's own data over candidate settings of the semantic tier.

* **HNSW breadth** (``index.ef_search``) and graph degree (M): recall@1 against brute force and the median
  query time, with the store's own vectors as the collection and the labelled questions as queries. M is part of
  the index file's format, so it is reported, not proposed; ``ef_search`` is proposed when today's value falls
  short of ``MIN_RECALL`` and a larger one reaches it.
* **Candidates** (``cache.candidates``): how often the entry a right pair is about is among the k nearest.
* **Exact vetoes** on and off: the same calibration with and without them.
* **Embedding models**: only the shipped model is installed with aicache; another directory named in
  ``cache.embedding_model`` would be re-embedded and compared here, which needs the whole store re-embedded.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aicache.learn.labelled import LabelledPair

if TYPE_CHECKING:
    from aicache.config import Settings

MIN_RECALL = 0.99
EF_CHOICES = (16, 32, 64, 128)
M_CHOICES = (16, 32)
CANDIDATE_CHOICES = (1, 3, 5, 10)
MIN_VECTORS = 50  # below this an exact scan serves every lookup: there is no index to tune
MAX_QUERIES = 500


def _stored(conn: sqlite3.Connection, model: str) -> tuple[list[str], Any]:
    import numpy as np

    rows = conn.execute(
        "SELECT question, embedding FROM entries WHERE embed_model = ? AND embedding IS NOT NULL", (model,)
    ).fetchall()
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    matrix = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
    return [str(r[0]) for r in rows], matrix


def hnsw_options(matrix: Any, queries: Any) -> list[dict[str, Any]]:
    """Recall@1 against brute force and median query time for every (M, ef) choice."""
    import hnswlib

    truth = (queries @ matrix.T).argmax(axis=1)
    results = []
    for m in M_CHOICES:
        index = hnswlib.Index(space="cosine", dim=matrix.shape[1])
        index.init_index(max_elements=len(matrix), M=m, ef_construction=200, random_seed=100)
        index.add_items(matrix, list(range(len(matrix))), num_threads=1)
        for ef in EF_CHOICES:
            index.set_ef(ef)
            found, times = [], []
            for query in queries:
                started = time.perf_counter()
                labels, _ = index.knn_query(query, k=1, num_threads=1)
                times.append((time.perf_counter() - started) * 1000)
                found.append(int(labels[0][0]))
            recall = sum(int(f == t) for f, t in zip(found, truth, strict=True)) / len(found)
            results.append(
                {"M": m, "ef": ef, "recall_at_1": round(recall, 4), "p50_ms": round(statistics.median(times), 4)}
            )
    return results


def candidate_recall(
    questions: list[str], matrix: Any, pairs: Sequence[LabelledPair], vectors: dict[str, Any]
) -> list[dict[str, Any]]:
    """For right pairs whose cached question is stored: how often it is among the k most similar entries."""
    import numpy as np

    position = {q: i for i, q in enumerate(questions)}
    ranks = []
    for pair in pairs:
        if pair.good and pair.cached in position and pair.question in vectors:
            similarities = matrix @ vectors[pair.question]
            ranks.append(int(np.sum(similarities > similarities[position[pair.cached]])))
    if not ranks:
        return []
    return [{"k": k, "recall": round(sum(r < k for r in ranks) / len(ranks), 4)} for k in CANDIDATE_CHOICES]


def search(conn: sqlite3.Connection, settings: Settings, pairs: Sequence[LabelledPair]) -> dict[str, Any]:
    """Every measurement above, and the ``index.ef_search`` it would choose (None: keep today's)."""
    import numpy as np

    from aicache.semantic import embeddings
    from aicache.semantic import index as vector_index

    embedder = embeddings.get_embedder(settings)
    questions, matrix = _stored(conn, embedder.model_id)
    asked = sorted({p.question for p in pairs})[:MAX_QUERIES]
    vectors = dict(zip(asked, embedder.encode(asked), strict=True)) if asked else {}
    found: dict[str, Any] = {"vectors": len(questions), "hnsw": [], "candidates": [], "chosen": {}}
    found["embedding_models"] = [embedder.model_id]
    if len(questions) >= MIN_VECTORS:
        queries = np.stack(list(vectors.values())) if vectors else matrix[:MAX_QUERIES]
        found["hnsw"] = hnsw_options(matrix, queries)
        current = int(settings.get("index.ef_search", vector_index.EF_SEARCH))
        ours = {r["ef"]: r["recall_at_1"] for r in found["hnsw"] if r["M"] == vector_index.INDEX_M}
        good = [ef for ef, recall in ours.items() if recall >= MIN_RECALL]
        # Only a recall problem is worth a proposal: a narrower search saves microseconds, a wider one finds hits.
        if good and ours.get(current, 0.0) < MIN_RECALL and min(good) > current:
            found["chosen"]["index.ef_search"] = min(good)
    found["candidates"] = candidate_recall(questions, matrix, pairs, vectors)
    return found
