"""The semantic tier at scale: bulk insert, lookup latency, index load time and disk use at 100,000 entries.

Usage: python benchmarks/bench_scale.py [--n 100000] [--runs 3] [--sample 2000] [--queries 1000] [--keep DIR]
       python benchmarks/bench_scale.py --n 1000000

What is built: N entries with synthetic developer questions and answers (600 bytes), spread over partitions
the way a real store is: one large partition (55%: one model, no system prompt, no pipe), two of 5% and
twenty-five of 1% (other models and system prompts), and the rest in partitions of five (piped content).

* **Embedding** is the bottleneck of a bulk insert, so it is measured for real (ONNX model, batches) on
  ``--sample`` questions; that sample is then inserted and indexed like any write, giving the bulk insert rate
  including embedding (the median of ``--runs`` inserts into empty stores). The synthetic questions are long
  (~22 tokens: a template plus a unique number), so the same is measured on the questions of the labelled
  sets in tests/data, as developers ask them (~11 tokens). Embedding all N questions would take N / rate seconds
  (printed), so the other N - sample vectors are synthetic: each is a random mix of two real embeddings (of N / 50
  distinct template questions) plus noise, normalised, which keeps real neighbourhoods rather than uniform noise.
  Said again in the output.
  The pool grows with N because hundreds of noisy copies of one embedding form a star around it, which HNSW
  handles badly: with a fixed pool of 2,000 at 1,000,000 entries it found the true nearest for about half of
  the queries, against all of them at 50 copies an embedding.
* **Lookups** are in-process, embedding excluded, partition filter included: ``index.nearest`` with the index
  loaded, as a long-lived library user or a second lookup in one process sees it. Queries are stored vectors
  plus noise, drawn from the partitions in proportion to their size; p50 and p99 per run, median over runs,
  and per partition class. The recall of the index path against an exact scan of the partition is printed too.
* **Index load** is ``index.open_index`` on the saved file: header check, CRC-32, hnswlib load, catch-up;
  **index save** the whole atomic rewrite a writer does (see the save policy in ``aicache/semantic/index.py``).
* **Bytes per entry**: the SQLite file (with WAL) and the index file, divided by N.

Targets at 100k: lookup p50 <= 2 ms and p99 <= 10 ms, index load <= 0.5 s, bulk insert >= 300 entries/s
including embedding.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VERBS = [
    "undo",
    "rename",
    "sort",
    "delete",
    "parse",
    "retry",
    "deploy",
    "squash",
    "format",
    "debug",
    "cache",
    "profile",
    "merge",
    "revert",
    "list",
]
OBJECTS = [
    "the last git commit",
    "a git branch",
    "a python list of dicts",
    "a docker image",
    "a rust crate",
    "a json file",
    "an http request",
    "a kubernetes pod",
    "a sql table",
    "a bash script",
    "a react component",
    "a go module",
]
TAILS = [
    "",
    "in place",
    "without losing changes",
    "on windows",
    "with a timeout",
    "from the command line",
    "in descending order",
    "using only the standard library",
    "in a ci pipeline",
    "for a large file",
]
CONTEXTS = [
    "in python",
    "in rust",
    "with git",
    "on macos",
    "in a monorepo",
    "behind a proxy",
    "as a beginner",
    "in production",
    "with docker compose",
    "on a raspberry pi",
    "in vs code",
    "for a team",
    "with minimal downtime",
    "in an air-gapped network",
    "using make",
    "in a github action",
]
TEMPLATES = len(VERBS) * len(OBJECTS) * len(TAILS) * len(CONTEXTS)
ANSWER = "Use the following steps. " * 24  # ~600 bytes, a short answer
SATELLITES = 50  # synthetic vectors per real embedding, as at 100k with a 2,000-question sample


def template(i: int) -> str:
    """One of TEMPLATES distinct questions; neighbouring i differ in every part."""
    j = (i * 7919) % TEMPLATES
    verb, j = VERBS[j % len(VERBS)], j // len(VERBS)
    obj, j = OBJECTS[j % len(OBJECTS)], j // len(OBJECTS)
    tail, j = TAILS[j % len(TAILS)], j // len(TAILS)
    return " ".join(f"how do I {verb} {obj} {tail} {CONTEXTS[j % len(CONTEXTS)]}".split())


def question(i: int) -> str:
    return f"{template(i)} (#{i})"


def partitions(n: int) -> list[tuple[str, int]]:
    """(partition key, size) covering n entries, largest first."""
    big, five, one = int(n * 0.55), int(n * 0.05), int(n * 0.01)
    plan = [("p-main", big), ("p-five-0", five), ("p-five-1", five)]
    plan += [(f"p-one-{i}", one) for i in range(25)]
    rest = n - sum(size for _, size in plan)
    plan += [(f"p-pipe-{i}", min(5, rest - 5 * i)) for i in range((rest + 4) // 5)]
    return plan


def median(values: list[float]) -> float:
    return statistics.median(values)


def synthetic_vectors(real: object, count: int, seed: int) -> Iterator[object]:
    """Batches of unit vectors, each a random mix of two real embeddings plus noise."""
    import numpy as np

    base = np.asarray(real, dtype=np.float32)
    rng = np.random.default_rng(seed)
    for start in range(0, count, 10_000):
        m = min(10_000, count - start)
        a, b = base[rng.integers(0, len(base), m)], base[rng.integers(0, len(base), m)]
        w = rng.uniform(0.6, 1.0, (m, 1)).astype(np.float32)
        mixed = w * a + (1 - w) * b + rng.normal(0, 0.02, (m, base.shape[1])).astype(np.float32)
        yield mixed / np.linalg.norm(mixed, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------------------


def labelled_questions() -> list[str]:
    """Every distinct question of the labelled sets in tests/data: real developer questions, as people ask them."""
    found: dict[str, None] = {}
    for path in sorted((ROOT / "tests" / "data").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            for key in ("question", "paraphrases", "negatives", "a", "b"):
                value = record.get(key)
                found.update(dict.fromkeys([value] if isinstance(value, str) else value or []))
    return list(found)


def mean_tokens(settings: object, texts: list[str]) -> float:
    from tokenizers import Tokenizer

    from aicache.semantic import embeddings

    spec = embeddings.model_spec(settings)  # type: ignore[arg-type]
    tokenizer = Tokenizer.from_file(str(spec.transformer_dir / "tokenizer.json"))
    tokenizer.no_padding()
    return statistics.mean(len(e.ids) for e in tokenizer.encode_batch(texts))


def measure_embedding(embedder: object, texts: list[str], runs: int) -> list[float]:
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        for start in range(0, len(texts), 256):
            embedder.encode(texts[start : start + 256])  # type: ignore[attr-defined]
        rates.append(len(texts) / (time.perf_counter() - started))
    return rates


def insert_rows(conn: object, rows: list[tuple[object, ...]]) -> None:
    from aicache import db

    with db.write_transaction(conn):  # type: ignore[arg-type]
        conn.executemany(  # type: ignore[attr-defined]
            "INSERT INTO entries (exact_key, partition_key, question, answer, embedding, embed_model, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 0)",
            rows,
        )


def bulk_with_embedding(conn: object, embedder: object, plan: list[tuple[str, int]], texts: list[str]) -> float:
    """Embed, insert and index the sample like a bulk import: entries/s including embedding."""
    from aicache.semantic import index

    owner = [key for key, size in plan for _ in range(size)]
    started = time.perf_counter()
    for start in range(0, len(texts), 256):
        vectors = embedder.encode(texts[start : start + 256])  # type: ignore[attr-defined]
        model = embedder.model_id  # type: ignore[attr-defined]
        batch = zip(texts[start : start + 256], vectors, strict=True)
        insert_rows(
            conn, [(f"k{start + i}", owner[start + i], t, ANSWER, v.tobytes(), model) for i, (t, v) in enumerate(batch)]
        )
    index.sync(conn, embedder.model_id, force=True)  # type: ignore[arg-type, attr-defined]
    return len(texts) / (time.perf_counter() - started)


def bulk_into_scratch_store(home: Path, embedder: object, plan: list[tuple[str, int]], texts: list[str]) -> float:
    """One bulk insert into an empty store of its own, removed afterwards: a run of the median."""
    from aicache import db

    real_home = os.environ["AICACHE_HOME"]
    os.environ["AICACHE_HOME"] = str(home)
    try:
        conn = db.connect()
        try:
            return bulk_with_embedding(conn, embedder, plan, texts)
        finally:
            conn.close()
    finally:
        os.environ["AICACHE_HOME"] = real_home
        shutil.rmtree(home, ignore_errors=True)


def build_store(args: argparse.Namespace, home: Path) -> dict[str, float]:
    import numpy as np

    from aicache import config, db
    from aicache.semantic import embeddings, index

    figures: dict[str, float] = {}
    settings = config.load()
    embedder = embeddings.get_embedder(settings)
    plan = partitions(args.n)
    owner = [key for key, size in plan for _ in range(size)]
    order = np.random.default_rng(1).permutation(args.n)  # entries arrive in no particular partition order
    texts = [question(int(i)) for i in order[: args.sample]]
    figures["embed_rate"] = median(measure_embedding(embedder, texts, args.runs))
    sample_plan = [(owner[i], 1) for i in order[: args.sample]]
    rates = [bulk_into_scratch_store(home / f"bulk-{n}", embedder, sample_plan, texts) for n in range(args.runs - 1)]
    conn = db.connect()
    rates.append(bulk_with_embedding(conn, embedder, sample_plan, texts))  # the last run fills the real store
    figures["bulk_rate"] = median(rates)
    asked = labelled_questions()
    figures["asked_count"] = len(asked)
    plan_asked = [("p-asked", len(asked))]
    asked_rates = [bulk_into_scratch_store(home / f"asked-{n}", embedder, plan_asked, asked) for n in range(args.runs)]
    figures["asked_rate"] = median(asked_rates)
    figures["sample_tokens"], figures["asked_tokens"] = mean_tokens(settings, texts), mean_tokens(settings, asked)
    pool = min(TEMPLATES, max(args.sample, args.n // SATELLITES))
    real = embedder.encode([template(i) for i in range(pool)])
    figures["real_pool"] = pool
    started = time.perf_counter()
    done = args.sample
    for batch in synthetic_vectors(real, args.n - args.sample, seed=2):
        ids = order[done : done + len(batch)]
        rows = [
            (f"k{done + j}", owner[i], question(int(i)), ANSWER, v.tobytes(), embedder.model_id)
            for j, (i, v) in enumerate(zip(ids, batch, strict=True))
        ]
        insert_rows(conn, rows)
        done += len(rows)
    figures["sqlite_rate"] = (args.n - args.sample) / (time.perf_counter() - started)
    started = time.perf_counter()
    index.rebuild(conn, embedder.model_id, embedder.dim)
    figures["index_rate"] = args.n / (time.perf_counter() - started)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return figures


def measure_lookups(args: argparse.Namespace) -> dict[str, object]:
    import numpy as np

    from aicache import config, db
    from aicache.semantic import embeddings, index

    settings = config.load()
    model = embeddings.model_id(settings)
    conn = db.connect()
    dim = index.stored_dim(conn, model) or 384
    loads = []
    for _ in range(max(args.runs, 5)):
        started = time.perf_counter()
        loaded = index.open_index(conn, model, dim)
        loads.append(time.perf_counter() - started)
    saves = []
    for _ in range(3):
        with index.WriterLock():
            started = time.perf_counter()
            loaded.save(conn)
            saves.append(time.perf_counter() - started)
    plan = partitions(args.n)
    rng = np.random.default_rng(3)
    sizes = np.array([size for _, size in plan], dtype=np.float64)
    picks = rng.choice(len(plan), size=args.queries, p=sizes / sizes.sum())
    queries = []
    members: dict[str, list[int]] = {}
    for p in picks:
        key = plan[p][0]
        if key not in members:
            members[key] = [r[0] for r in conn.execute("SELECT id FROM entries WHERE partition_key = ?", (key,))]
        entry_id = members[key][int(rng.integers(len(members[key])))]
        row = conn.execute("SELECT embedding FROM entries WHERE id = ?", (entry_id,)).fetchone()
        vector = np.frombuffer(row[0], dtype=np.float32) + rng.normal(0, 0.01, dim).astype(np.float32)
        queries.append((key, plan[p][1], (vector / np.linalg.norm(vector)).astype(np.float32)))
    runs: list[list[float]] = []
    per_class: dict[str, list[float]] = {}
    for _ in range(args.runs):
        times = []
        for key, size, vector in queries:
            started = time.perf_counter()
            index.nearest(conn, vector, key, model, k=5, min_similarity=0.5, load=lambda: loaded, index=loaded)
            elapsed = (time.perf_counter() - started) * 1000
            times.append(elapsed)
            per_class.setdefault(label(size, args.n), []).append(elapsed)
        runs.append(times)
    recall = measure_recall(conn, loaded, queries, model)
    return {"loads": loads, "saves": saves, "runs": runs, "per_class": per_class, "recall": recall}


def label(size: int, n: int) -> str:
    share = f"{100 * size / n:.2g}% of N"
    return f"partitions of {size:,} ({share})"


def measure_recall(
    conn: object, loaded: object, queries: list[tuple[str, int, object]], model: str
) -> tuple[float, float]:
    """Top-5 overlap of the loaded-index path with a brute-force scan of the whole partition."""
    from aicache.semantic import index

    hits = total = firsts = counted = 0
    for key, size, vector in queries[:200]:
        if size <= 5:
            continue
        approx = index.nearest(conn, vector, key, model, k=5, min_similarity=-1.0, load=lambda: loaded, index=loaded)
        exact = loaded.exact(vector, loaded.members(conn, key), 5) or []  # type: ignore[attr-defined]
        hits += len({n.entry_id for n in approx.neighbours} & {n.entry_id for n in exact})
        total += len(exact)
        firsts += bool(exact) and bool(approx.neighbours) and approx.neighbours[0].entry_id == exact[0].entry_id
        counted += bool(exact)
    return (hits / total, firsts / counted) if total else (float("nan"), float("nan"))


def disk_use(home: Path, n: int) -> tuple[float, float]:
    data = home / "data"
    sqlite_bytes = sum(p.stat().st_size for p in data.glob("aicache.db*"))
    return sqlite_bytes / n, (data / "index.hnsw").stat().st_size / n


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(args: argparse.Namespace, home: Path, built: dict[str, float], looked: dict[str, object]) -> None:
    runs = looked["runs"]
    assert isinstance(runs, list)
    p50 = median([percentile(r, 0.50) for r in runs])
    p99 = median([percentile(r, 0.99) for r in runs])
    loads = looked["loads"]
    assert isinstance(loads, list)
    sqlite_per, index_per = disk_use(home, args.n)
    print(
        f"\naicache bench_scale: N = {args.n:,} entries, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    if built:
        embed = built["embed_rate"]
        print(
            f"  embedding (real ONNX model, batches of 256, {args.sample:,} questions): {embed:,.0f} entries/s "
            f"(median of {args.runs}); embedding all {args.n:,} would take {args.n / embed / 60:,.1f} min"
        )
        print(
            f"  bulk insert incl. embedding (embed + SQLite + index, {args.sample:,} entries into an empty store): "
            f"{built['bulk_rate']:,.0f} entries/s (median of {args.runs}); these synthetic questions average "
            f"{built['sample_tokens']:.1f} tokens"
        )
        print(
            f"  the same with the {built['asked_count']:,.0f} questions of the labelled sets in tests/data (real "
            f"developer questions, {built['asked_tokens']:.1f} tokens on average): {built['asked_rate']:,.0f} entries/s"
        )
        print(
            f"  the other {args.n - args.sample:,} vectors are SYNTHETIC: mixes of two of {int(built['real_pool']):,} "
            "real embeddings + noise"
        )
        print(
            f"  SQLite insert without embedding: {built['sqlite_rate']:,.0f} entries/s;"
            f" index build: {built['index_rate']:,.0f} vectors/s"
        )
    print(
        f"  lookup in-process (embedding excluded, partition filter included), {args.queries:,} queries x "
        f"{len(runs)} runs: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )
    per_class = looked["per_class"]
    assert isinstance(per_class, dict)
    for name, values in sorted(per_class.items(), key=lambda kv: -len(kv[1])):
        print(
            f"    {name}: p50 {percentile(values, 0.5):.2f} ms, p99 {percentile(values, 0.99):.2f} ms "
            f"({len(values) // len(runs)} queries)"
        )
    recall5, top1 = looked["recall"]  # type: ignore[misc]
    print(f"  vs an exact scan of the partition (200 queries): recall@5 {recall5:.3f}, same top-1 {top1:.3f}")
    print(f"  index load (check, CRC, hnswlib, catch-up): median {median(loads):.3f} s over {len(loads)} loads")
    saves = looked["saves"]
    assert isinstance(saves, list)
    print(f"  index save (whole file: write, fsync, CRC, record, rename): median {median(saves):.3f} s")
    print(
        f"  disk: {sqlite_per + index_per:,.0f} bytes/entry = SQLite {sqlite_per:,.0f} "
        f"(600-byte answers, 1,536-byte vectors) + index {index_per:,.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=2000, help="questions embedded for real")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="build here and keep it; reuse it if it is already built")
    args = parser.parse_args()
    home = args.keep or Path(tempfile.mkdtemp(prefix="aicache-bench-scale-"))
    os.environ["AICACHE_HOME"] = str(home)
    os.environ["HF_HUB_OFFLINE"] = "1"
    figures = home / "build-figures.json"  # a kept store reports the figures of the run that built it
    try:
        if figures.exists():
            built = json.loads(figures.read_text())
        else:
            built = build_store(args, home)
            figures.write_text(json.dumps(built))
        report(args, home, built, measure_lookups(args))
    finally:
        if args.keep is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
