"""The decision model: its training script, its topic split, its calibration and the shipped artefact."""

from __future__ import annotations

import json
import math
import random
import re
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from aicache.config import Settings
from aicache.semantic import decision, features
from tests.fakellm import FakeLLM, Reply
from tests.test_cli import ask, rows, run
from tests.test_semantic import export_run, model_home, onnx_models  # noqa: F401  (fixtures)
from training import answers, calibrate, pairs
from training import compare as comparer
from training import train as trainer

ROOT = Path(__file__).resolve().parent.parent


def test_no_topic_is_in_two_splits() -> None:
    everything = pairs.all_pairs()
    seen: dict[str, str] = {}
    for p in everything:
        assert seen.setdefault(p.topic, pairs.split_of(p.topic)) == pairs.split_of(p.topic)
    parts = pairs.split(everything)
    topics = [{p.topic for p in parts[name]} for name in pairs.SPLITS]
    assert not (topics[0] & topics[1]) and not (topics[0] & topics[2]) and not (topics[1] & topics[2])
    # roughly 70 / 15 / 15 of the topics, and every generated pair sits with the family it was made from
    assert 0.6 < len(topics[0]) / sum(map(len, topics)) < 0.8
    families = {f["id"] for f in pairs.load_families()}
    generated = pairs.read_jsonl(pairs.DATA / "generated.jsonl")
    assert generated and all(row["topic"] in families for row in generated)


def test_the_held_out_files_are_never_trained_or_calibrated_on() -> None:
    trained = {t.strip().lower() for p in pairs.all_pairs() for t in (p.a, p.b)}
    for name in pairs.HELD_OUT_FILES:
        for row in pairs.read_jsonl(ROOT / "tests" / "data" / name):
            texts = [
                row.get("question"),
                *row.get("paraphrases", []),
                *row.get("negatives", []),
                row.get("a"),
                row.get("b"),
            ]
            assert not {t.strip().lower() for t in texts if t} & trained, row


def test_clopper_pearson_upper_bound() -> None:
    # Reference values: scipy.stats.beta.ppf(0.975, k + 1, n - k)
    assert calibrate.cp_upper(0, 368) == pytest.approx(0.0099741, abs=1e-6)
    assert calibrate.cp_upper(3, 1000) == pytest.approx(0.0087420, abs=1e-6)
    assert calibrate.cp_upper(52, 669) == pytest.approx(0.1006828, abs=1e-6)
    assert calibrate.cp_upper(0, 367) > 0.01 > calibrate.cp_upper(0, 368)  # the fewest near-misses for 1%
    assert calibrate.cp_upper(5, 5) == 1.0 and calibrate.cp_upper(0, 0) == 1.0


def test_the_threshold_is_the_most_permissive_within_the_budget() -> None:
    # 1,000 near-misses: up to 3 may be served (CP(3, 1000) = 0.87%, CP(4, 1000) = 1.05%)
    negatives = [i / 1000 for i in range(1000)]  # scores 0.000 .. 0.999
    positives = [0.9985, 0.997, 0.9965, 0.99, 0.5]
    scores, labels = negatives + positives, [0] * 1000 + [1] * 5
    threshold, counts = calibrate.choose_threshold(scores, labels)
    assert 0.996 < threshold <= math.nextafter(0.996, 1)  # just above the 4th highest near-miss
    assert (counts.wrong, counts.negatives, counts.served) == (3, 1000, 3)
    assert counts.wrong_upper <= 0.01
    # a near-miss the floor or a veto already refuses does not count against the threshold
    eligible = [s < 0.999 for s in negatives] + [True] * 5
    lower, counts = calibrate.choose_threshold(scores, labels, eligible)
    assert lower < threshold and counts.wrong == 3
    # with too few near-misses no threshold meets the budget
    assert calibrate.choose_threshold([0.1, 0.9], [0, 1])[0] == math.inf


def test_the_union_rule_keeps_the_bound_on_what_either_score_serves() -> None:
    # 1,000 near-misses ranked in opposite orders by the two scores; 3 may be served in all (CP(3, 1000) = 0.87%)
    first = [i / 1000 for i in range(1000)]
    second = [(999 - i) / 1000 for i in range(1000)]
    positives = [(0.9995, 0.0), (0.0, 0.9995), (0.9975, 0.0), (0.0, 0.9975)]
    labels = [0] * 1000 + [1] * len(positives)
    f, s = first + [p[0] for p in positives], second + [p[1] for p in positives]
    union = calibrate.choose_union(f, s, labels, grid=[0.99, 0.9972, 0.999])
    assert union is not None
    # at 0.99 the first score alone serves 10 near-misses: never chosen; 0.9972 and 0.999 serve 3 positives
    # each, and a tie goes to the higher first threshold
    assert union.first == 0.999 and 0.997 < union.second <= math.nextafter(0.997, 1)
    served = [a >= union.first or b >= union.second for a, b in zip(f, s, strict=True)]
    assert sum(served[:1000]) == union.counts.wrong == 3 and union.counts.served == 3
    # one more positive only the looser first threshold serves tips the choice to it
    more = calibrate.choose_union([*f, 0.998], [*s, 0.0], [*labels, 1], grid=[0.99, 0.9972, 0.999])
    assert more is not None and more.first == 0.9972 and more.counts.served == 4 and more.counts.wrong == 3
    assert calibrate.choose_union(f, s, labels, grid=[0.99]) is None


def test_the_bound_holds_for_each_kind_of_near_miss_not_only_for_their_pool() -> None:
    # 1,000 easy near-misses (scores up to 0.5) and 400 hard ones (question against its own near-miss, up to
    # 0.999): pooled, 1,400 near-misses allow 6 wrong, all of them hard ones; on their own 400 allow none.
    easy = [i / 2000 for i in range(1000)]
    hard = [0.5 + i / 800 for i in range(400)]
    scores, labels = [*easy, *hard, 0.9995], [0] * 1400 + [1]
    kinds = ["paraphrase"] * 1000 + ["question"] * 400 + ["question"]
    pooled, counts = calibrate.choose_threshold(scores, labels)
    assert counts.wrong == 6 and counts.wrong_upper <= 0.01
    assert calibrate.count_by_kind(scores, labels, pooled, kinds)["question"].wrong_upper > 0.03
    strict, counts = calibrate.choose_threshold(scores, labels, kinds=kinds)
    assert strict > pooled and counts.wrong == 0 and counts.served == 1
    by_kind = calibrate.count_by_kind(scores, labels, strict, kinds)
    assert all(c.wrong_upper <= 0.01 for c in by_kind.values()), by_kind
    assert (by_kind["question"].negatives, by_kind["paraphrase"].negatives) == (400, 1000)
    assert [calibrate.near_miss_kind(r) for r in ("q-n", "n-q", "trap", "p-n", "gen-scope", "cross")] == [
        "question",
        "question",
        "pair",
        "paraphrase",
        "generated",
        "cross",
    ]


def test_the_light_edits_benchmarked_are_the_test_topics_positives(tmp_path: Path) -> None:
    written = pairs.read_jsonl(pairs.write_light_edits(tmp_path))
    generated = pairs.read_jsonl(pairs.DATA / "generated.jsonl")
    expected = [r for r in generated if r["kind"] == "light-edit" and pairs.split_of(r["topic"]) == "test"]
    assert written and [(w["a"], w["b"]) for w in written] == [(r["a"], r["b"]) for r in expected]
    assert all(w["same_answer"] is True for w in written)


def test_the_independent_writers_pairs_calibrate_and_are_never_trained_on() -> None:
    independent = pairs.independent_pairs()
    assert {p.label for p in independent} == {0, 1}
    assert all(p.topic.startswith("independent:") for p in independent)
    assert {calibrate.near_miss_kind(p.role) for p in independent if not p.label} == {"question", "pair", "paraphrase"}
    trained = {pairs._fold(t) for p in pairs.all_pairs() for t in (p.a, p.b)}
    assert not {pairs._fold(t) for p in independent for t in (p.a, p.b)} & trained


@pytest.mark.slow
def test_the_training_script_trains_a_cross_encoder_a_few_steps(tmp_path: Path) -> None:
    out, work = tmp_path / "decision", tmp_path / "work"
    args = ["--design", "cross-encoder", "--limit", "12", "--max-steps", "2", "--batch-size", "4"]
    assert trainer.main([*args, "--out", str(out), "--work", str(work)]) == 0
    config = decision.read_config(out)
    assert config.kind == "cross-encoder" and config.version.startswith("pair-minilm-")
    assert 0.0 <= config.threshold <= 1.0 and config.calibration["train_pairs"] > 0
    import numpy as np

    with np.load(out / "adapter.npz") as adapter:
        assert any(name.endswith(".lora_a") for name in adapter.files) and "classifier.weight" in adapter.files
    assert json.loads((work / "pairs.json").read_text())["calibration"]


@pytest.mark.slow
def test_the_training_script_fits_the_feature_model(tmp_path: Path) -> None:
    out, work = tmp_path / "decision", tmp_path / "work"
    assert trainer.main(["--limit", "40", "--out", str(out), "--work", str(work)]) == 0
    config = decision.read_config(out)
    assert config.kind == "features" and config.version.startswith("pair-features-")
    assert config.weights["basis"] == features.DEFAULT_BASIS
    assert len(config.weights["coef"]) == len(features.terms(features.DEFAULT_BASIS)) > len(features.FEATURES)
    assert not (out / "adapter.npz").exists()
    # make model's last step compares the designs: from the scores train.py saved, and from every pair scored
    # again by the runtime; both must give the same figures
    figures = []
    for extra in ([], ["--scores", str(tmp_path / "absent.json")]):
        written = tmp_path / "figures.json"
        compare_args = ["--no-store-all", "--work", str(work), "--decision", str(out), "--json", str(written)]
        assert comparer.main([*compare_args, *extra]) == 0
        rows = json.loads(written.read_text())["pairwise"]
        figures.append({r["split"]: (r["served"], r["wrong"]) for r in rows if r["design"] == "shipped model"})
    assert set(figures[0]) == {"calibration", "test", "test q->p/n"}  # a --limit run has no held-out files
    assert figures[0] == figures[1]


def test_the_training_script_fits_a_model_that_reads_the_cached_answer(tmp_path: Path) -> None:
    out, work = tmp_path / "decision", tmp_path / "work"
    assert trainer.main(["--limit", "40", "--answers", "--out", str(out), "--work", str(work)]) == 0
    config = decision.read_config(out)
    assert len(config.weights["answer_coef"]) == len(features.ANSWER_TERMS)
    model = features.Weights.of(config.weights)
    assert model.answer is not None and model.answer.embedder == config.weights["interaction_embedder"]
    # it is fitted and calibrated only on pairs whose cached text has an answer
    known = answers.text_answers()
    dumped = json.loads((work / "pairs.json").read_text())
    assert dumped["train"] and all(p["a"] in known for split in dumped.values() for p in split)


def test_no_text_is_given_the_answer_of_a_question_it_is_a_near_miss_of() -> None:
    known = answers.text_answers()
    assert len(known) > 10_000
    families = [f for path in answers.family_files() for f in pairs.read_jsonl(path) if "question" in f]
    answered = [f for f in families if f["question"] in known]
    assert answered and all(known.get(p) == known[f["question"]] for f in answered for p in f.get("paraphrases", []))
    assert all(known.get(n) != known[f["question"]] for f in answered for n in f.get("negatives", []))
    rows = [r for path in answers.pair_files() for r in pairs.read_jsonl(path) if r["a"] in known]
    assert rows and all((known.get(r["b"]) == known[r["a"]]) == r["same_answer"] for r in rows)


def test_the_feature_models_regularization_and_the_generated_rewordings_weight_change_the_fit() -> None:
    from training import features as training_features

    rng = random.Random(7)
    rows = [[rng.random() for _ in features.FEATURES] for _ in range(200)]
    labels = [int(r[0] + 0.3 * rng.random() > 0.6) for r in rows]

    def size(model: training_features.FeatureModel) -> float:
        return math.fsum(c * c for c in model.coef)

    loose, tight = (training_features.FeatureModel("linear", c=c).fit(rows, labels) for c in (1.0, 0.01))
    assert size(tight) < size(loose) / 4  # a smaller C shrinks the weights
    light = pairs.Pair("a", "b", 1, "t", "gen-light-edit")
    hand = pairs.Pair("a", "c", 1, "t", "q-p")
    assert trainer.sample_weight(light, 2.0) == 2.0 and trainer.sample_weight(hand, 2.0) == 1.0
    assert trainer.sample_weight(light) == trainer.GENERATED_POSITIVE_WEIGHT


def test_the_shipped_decision_toml_records_its_calibration() -> None:
    data = tomllib.loads((decision.DATA_DIR / "decision.toml").read_text(encoding="utf-8"))
    calibration = data["calibration"]
    assert calibrate.cp_upper(calibration["near_misses_served"], calibration["near_misses"]) <= 0.01
    assert 0.0 < data["threshold"] < 1.0 and 0.0 < data["floor"] < 1.0
    assert decision.read_config(decision.DATA_DIR).version == data["version"]
    size = sum(p.stat().st_size for p in decision.DATA_DIR.iterdir())
    assert size <= 25 * 1024 * 1024


@pytest.mark.slow
def test_the_shipped_model_scores_paraphrases_above_near_misses() -> None:
    model = decision.load(Settings({}))
    assert model.version == decision.read_config(decision.DATA_DIR).version
    # real families of tests/data/heldout-pairs.jsonl: (question, paraphrase, near-miss)
    cases = [
        (
            "delete duplicate rows in postgres keeping one",
            "remove duplicate rows from a postgresql table but keep a single copy",
            "delete duplicate rows in mysql keeping one",
        ),
        (
            "difference between left join and inner join",
            "how does an inner join differ from a left join",
            "difference between left join and right join",
        ),
    ]
    for question, paraphrase, near_miss in cases:
        served, refused = model.score(question, [paraphrase, near_miss])
        assert served > refused
        assert served >= model.threshold > refused
    assert model.score("anything", []) == []
    assert decision.is_prepared(Settings({}))


def test_pair_features_carry_the_verifiers_own_verdict() -> None:
    """The features reuse the rules' reasons for the verdict instead of comparing the pair twice: the verdict
    must be the one ``verify`` gives, on every pair of the dev set, at similarities across its thresholds."""
    from aicache.semantic import verify

    accepts, gray = features.FEATURES.index("verifier accepts"), features.FEATURES.index("verifier gray zone")
    families = [
        json.loads(line)
        for line in (ROOT / "tests" / "data" / "dev-pairs.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    checked = 0
    for family in families[:40]:
        for other in [*family["paraphrases"], *family["negatives"]]:
            for similarity in (-0.1, 0.3, 0.65, 0.95):
                row = features.pair_features(family["question"], other, similarity)
                verdict = verify.verify(other, family["question"], similarity, threshold=0.0)
                assert (row[accepts], row[gray]) == (float(verdict.accepted), float(verdict.gray_zone))
                checked += 1
    assert checked > 400


def test_a_refusal_names_the_rules_that_objected_beside_the_score() -> None:
    from aicache.semantic.decide import ModelDecision

    def refuse_all(
        question: str, cached: object, similarities: list[float], vectors: object = None, answers: object = None
    ) -> list[float]:
        return [0.1] * len(similarities)

    decision_ = ModelDecision(threshold=0.76, floor=0.5, version="test", scorer=refuse_all)
    cached = "how do I undo my last commit but keep the changes"
    opposite, reworded = decision_.judge(
        "undo last commit and discard the changes", [(cached, 0.94)]
    ) + decision_.judge("take back my last commit, keep the code", [(cached, 0.78)])
    assert opposite.reasons == ("score 0.10 below threshold 0.76", "opposite words: discard vs keep")
    assert reworded.reasons == ("score 0.10 below threshold 0.76",)  # no rule objects: the score alone refused


def test_the_gray_zone_reaches_as_far_below_the_threshold_as_judge_gray_zone_says() -> None:
    from aicache.semantic import decide
    from aicache.semantic.decide import ModelDecision

    def score_half(
        question: str, cached: object, similarities: list[float], vectors: object = None, answers: object = None
    ) -> list[float]:
        return [0.5] * len(similarities)

    pair = ("take back my last commit, keep the code", [("how do I undo my last commit but keep the changes", 0.78)])
    narrow = ModelDecision(threshold=0.88, floor=0.5, version="test", scorer=score_half, gray_zone=0.30)
    [outside] = narrow.judge(*pair)
    [inside] = replace(narrow, gray_zone=0.40).judge(*pair)
    assert not outside.accepted and not outside.gray_zone
    assert not inside.accepted and inside.gray_zone  # 0.50 >= 0.88 - 0.40: the judge may rule on it
    shipped, widened = decide.load(Settings({})), decide.load(Settings({"judge": {"gray_zone": 0.4}}))
    assert isinstance(shipped, decide.AnswerAwareDecision) and isinstance(widened, decide.AnswerAwareDecision)
    assert shipped.questions.gray_zone == shipped.answers.gray_zone == decide.GRAY_ZONE == 0.45
    assert widened.questions.gray_zone == widened.answers.gray_zone == 0.4


def test_a_number_bounded_on_opposite_sides_is_vetoed_whatever_the_score() -> None:
    from aicache.semantic.decide import ModelDecision

    def serve_all(
        question: str, cached: object, similarities: list[float], vectors: object = None, answers: object = None
    ) -> list[float]:
        return [0.99] * len(similarities)

    decision_ = ModelDecision(threshold=0.76, floor=0.5, version="test", scorer=serve_all)
    cached = "Is the prior-year safe harbor 100% or 110% if my AGI was over $150,000?"
    [under] = decision_.judge(cached.replace("over", "under"), [(cached, 0.998)])
    [above] = decision_.judge(cached.replace("over", "above"), [(cached, 0.998)])
    assert not under.accepted and any(r.startswith("opposite bounds: below 150000") for r in under.reasons)
    assert above.accepted


def test_a_candidate_below_the_floor_is_never_judged_by_the_model() -> None:
    from aicache.semantic.decide import ModelDecision

    asked: list[list[str]] = []

    def trust_all(
        question: str, cached: list[str], similarities: list[float], vectors: object = None, answers: object = None
    ) -> list[float]:
        asked.append(list(cached))
        return [0.99] * len(similarities)

    decision_ = ModelDecision(threshold=0.76, floor=0.5, version="test", scorer=trust_all)
    near, far = decision_.judge("rename a git branch", [("rename a branch in git", 0.93), ("brew a cup of tea", 0.18)])
    assert near.accepted and not far.accepted
    assert far.reasons == ("similarity 0.18 below the floor 0.50",) and far.score == 0.0
    assert asked == [["rename a branch in git"]]  # the far one was never scored
    assert decision_.judge("anything", [("brew a cup of tea", 0.2)])[0].accepted is False and len(asked) == 1


def test_the_model_is_given_the_vectors_of_the_candidates_it_scores() -> None:
    import numpy as np

    from aicache.semantic.decide import ModelDecision

    given: list[object] = []

    def record(
        question: str, cached: list[str], similarities: list[float], vectors: object = None, answers: object = None
    ) -> list[float]:
        given.append(vectors)
        return [0.99] * len(cached)

    decision_ = ModelDecision(threshold=0.76, floor=0.5, version="test", scorer=record)
    vectors = np.arange(8.0).reshape(4, 2)  # the question's row, then one per candidate
    candidates = [("rename a branch in git", 0.93), ("brew a cup of tea", 0.18), ("git rename branch", 0.9)]
    decision_.judge("rename a git branch", candidates, vectors)
    assert np.array_equal(given[0], vectors[[0, 1, 3]])  # the one under the floor is left out with its vector
    decision_.judge("rename a git branch", candidates)
    assert given[1] is None  # a caller without vectors: the model embeds the texts itself


def test_the_directions_and_the_head_are_weighed_only_on_the_embeddings_they_were_fitted_on() -> None:
    import numpy as np

    from aicache.semantic.interaction import Heads
    from tests.test_interaction import TokenStub

    config = decision.read_config(decision.DATA_DIR)
    weights = features.Weights.of(config.weights)
    assert weights.directions is not None and weights.interaction is not None  # the shipped model weighs both
    assert weights.interaction.embedder == weights.directions.embedder

    def tokens_only() -> object:
        return TokenStub()  # no ``encode``: the vectors were given, only the head needs the tokens

    same = decision.FeatureModel(config, tokens_only, weights.directions.embedder)
    other = decision.FeatureModel(config, tokens_only, "another-model@0000")
    question, cached = "git undo last commit keep changes", "undo my last commit but keep the changes"
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(2, 384))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = float(vectors[0] @ vectors[1])
    row = features.pair_features(cached, question, similarity)
    heads = Heads.find(weights.interaction.heads, (decision.DATA_DIR,))
    head = heads.logits(*([m] for m in TokenStub().token_embeddings([cached, question])))
    fixed = weights.direction_logits(vectors[1:], vectors[:1]) + weights.interaction_logits(head, [similarity])
    with_both = weights.scores([row], fixed)[0]
    without = weights.scores([row], np.zeros(1))[0]
    assert with_both != pytest.approx(without)
    assert same.score(question, [cached], [similarity], vectors) == pytest.approx([with_both])
    assert other.score(question, [cached], [similarity], vectors) == pytest.approx([without])


@pytest.mark.slow
@pytest.mark.usefixtures("model_home")  # the session's exported embedding model, linked into this test's home
def test_the_models_score_is_shown_wherever_a_verdict_is_explained(aicache_home: Path, fake_llm: FakeLLM) -> None:
    home = aicache_home
    (home / "config.toml").write_text("[cache]\nsemantic = true\n")  # the shipped decision model, by default
    reset = (
        "Use `git reset --soft HEAD~1`. It moves your branch back one commit and keeps that commit's changes staged,"
        " so you can edit them and commit again; `git reset HEAD~1` leaves them unstaged instead."
    )
    fake_llm.enqueue(Reply.text(reset), Reply.text("git reset --hard HEAD~1"))
    assert ask(home, fake_llm, "how do I undo my last commit but keep the changes").returncode == 0
    reworded = "how to undo my last commit but keep the changes"
    noted = ask(home, fake_llm, reworded)
    served = json.loads(ask(home, fake_llm, reworded, "--json").stdout)
    assert served["outcome"] == "semantic_hit" and served["score"] >= served["threshold"], served
    assert f"semantic hit (similarity {served['similarity']:.2f}, score {served['score']:.2f})".encode() in (
        noted.stderr
    ), noted.stderr
    refused = ask(home, fake_llm, "how do I undo my last commit and discard the changes", "--json")
    assert json.loads(refused.stdout)["outcome"] == "miss" and json.loads(refused.stdout)["score"] is None

    why_hit = json.loads(run(home, None, "why", str(served["episode_id"]), "--json").stdout)
    version = decision.read_config(decision.model_directory(Settings({}))).version
    assert why_hit["summary"].startswith(f"semantic hit: score {served['score']:.2f} >= threshold "), why_hit
    why_miss = run(home, None, "why", str(json.loads(refused.stdout)["episode_id"]))
    text = why_miss.stdout.decode()
    answers = decision.read_config(decision.ANSWER_DIR).version
    assert f"refused by the hit decision (model:{version}+answer:{answers})" in text, text
    assert "\tsimilarity\tscore\tverdict\t" in text and re.search(r"\t0\.\d{3}\trefused\t", text), text
    shown = run(home, None, "show", str(served["episode_id"])).stdout.decode()
    assert f"accepted, similarity {served['similarity']:.3f}: score {served['score']:.2f} >= threshold" in shown


@pytest.mark.usefixtures("model_home")
def test_an_answer_is_stored_with_its_vector_and_a_refreshed_answer_with_its_own(
    aicache_home: Path, fake_llm: FakeLLM
) -> None:
    import numpy as np

    from aicache.semantic import embeddings

    home = aicache_home
    (home / "config.toml").write_text("[cache]\nsemantic = true\n")  # the shipped decision models, by default
    question = "how do I undo my last commit but keep the changes"
    first, second = "Run `git reset --soft HEAD~1`.", "Bake the bread at 220 degrees for 35 minutes."
    fake_llm.enqueue(Reply.text(first), Reply.text(second))
    assert ask(home, fake_llm, question).returncode == 0
    embedder = embeddings.get_embedder(Settings({}))

    def stored() -> object:
        ((blob,),) = rows(home, "SELECT answer_embedding FROM entries")
        return np.frombuffer(blob, dtype=np.float32)

    assert np.allclose(stored(), embedder.encode([first])[0], atol=1e-5)
    assert ask(home, fake_llm, question, "--refresh").returncode == 0
    assert np.allclose(stored(), embedder.encode([second])[0], atol=1e-5)  # never the replaced answer's
    # a candidate stored with its answer is judged by the model that reads it, and the episode says so
    reworded = json.loads(ask(home, fake_llm, "how to undo my last commit, but keep the changes?", "--json").stdout)
    why = json.loads(run(home, None, "why", str(reworded["episode_id"]), "--json").stdout)
    answer_model = decision.read_config(decision.ANSWER_DIR)
    assert why["episode"]["decision"].endswith(f"+answer:{answer_model.version}"), why
    assert why["candidates"][0]["threshold"] == round(answer_model.threshold, 4), why


@pytest.mark.slow
@pytest.mark.usefixtures("model_home")
def test_a_piped_log_with_two_different_requests_is_never_a_semantic_hit(aicache_home: Path, fake_llm: FakeLLM) -> None:
    # The user's report: the same 40-line log piped in, then two requests; the model reads only the first 256
    # tokens, which hold the log alone, so the second was served the first's answer (similarity 1.0).
    home = aicache_home
    (home / "config.toml").write_text("[cache]\nsemantic = true\n")  # the shipped decision model, by default
    log = "\n".join(
        f"2024-05-01 12:{i:02d}:07 INFO worker-{i % 3} processed batch {i} in {i * 7 % 50} ms" for i in range(40)
    )
    most = f"{log}\n\nWhich worker processed the most batches? Answer with the worker name only.\n".encode()
    csv = f"{log}\n\nRewrite this log as a CSV table with columns time, worker, batch.\n".encode()
    reset = (
        "Use `git reset --soft HEAD~1`. It moves your branch back one commit and keeps that commit's changes staged,"
        " so you can edit them and commit again; `git reset HEAD~1` leaves them unstaged instead."
    )
    fake_llm.enqueue(Reply.text("worker-0"), Reply.text("time,worker,batch"), Reply.text(reset))
    assert json.loads(ask(home, fake_llm, "--json", stdin=most).stdout)["outcome"] == "miss"
    second = json.loads(ask(home, fake_llm, "--json", stdin=csv).stdout)
    assert (second["outcome"], second["answer"]) == ("miss", "time,worker,batch"), second
    again = json.loads(ask(home, fake_llm, "--json", stdin=most).stdout)
    assert (again["outcome"], again["answer"]) == ("exact_hit", "worker-0"), again
    assert len(fake_llm.requests) == 2

    why = json.loads(run(home, None, "why", str(second["episode_id"]), "--json").stdout)
    assert re.fullmatch(
        r"miss: no semantic lookup: question longer than the embedding model reads \(\d+ tokens > 256\): "
        r"exact match only",
        why["summary"],
    ), why
    shown = run(home, None, "show", str(second["episode_id"])).stdout.decode()
    assert "semantic tier: question longer than the embedding model reads (" in shown, shown
    assert rows(home, "SELECT count(*) FROM entries WHERE embedding IS NOT NULL") == [(0,)]
    # Short questions are judged as before, in the same partition.
    assert ask(home, fake_llm, "how do I undo my last commit but keep the changes").returncode == 0
    reworded = json.loads(ask(home, fake_llm, "how to undo my last commit but keep the changes", "--json").stdout)
    assert reworded["outcome"] == "semantic_hit" and reworded["answer"] == reset, reworded
