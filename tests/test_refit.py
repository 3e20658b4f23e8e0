"""``learn``'s refit of the decision model: the fit itself, its gates, and the artefact the proposal carries."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest

from aicache.config import Settings
from aicache.errors import ConfigError
from aicache.learn import calibrate, refit, settings_repo
from aicache.learn.labelled import LabelledPair
from aicache.semantic import decision, features
from aicache.semantic.interaction import Heads
from tests.test_interaction import TokenStub


def test_the_newton_fit_is_scikit_learns_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 6))
    y = (x @ rng.normal(size=6) + rng.normal(scale=1.5, size=400) > 0).astype(float)
    expected = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x, y)
    with_bias = np.hstack([x, np.ones((400, 1))])
    got = refit._newton(with_bias, y, np.ones(400), np.zeros(400))
    assert np.allclose(got[:-1], expected.coef_[0], atol=1e-5)
    assert got[-1] == pytest.approx(expected.intercept_[0], abs=1e-5)


def test_a_rows_weight_counts_as_that_many_copies_of_it() -> None:
    rng = np.random.default_rng(9)
    x = np.hstack([rng.normal(size=(60, 3)), np.ones((60, 1))])
    y = (rng.random(60) > 0.5).astype(float)
    weight = np.ones(60)
    weight[:10] = 3.0
    copied = np.vstack([x, x[:10], x[:10]])
    assert np.allclose(
        refit._newton(x, y, weight, np.zeros(60)),
        refit._newton(copied, np.concatenate([y, y[:10], y[:10]]), np.ones(80), np.zeros(80)),
        atol=1e-8,
    )


def shipped() -> decision.DecisionConfig:
    return decision.read_config(decision.DATA_DIR)


def labelled(count: int, *, start: float, seed: int) -> list[LabelledPair]:
    """Pairs of distinct topics, all of them close (cosine 0.80-0.95): the right ones reworded, the wrong ones
    asking the opposite."""
    rng, vectors = random.Random(seed), np.random.default_rng(seed)
    made = []
    for i in range(count):
        good = i % 2 == 0
        topic = f"service{int(start) + i}"
        new = f"how can I turn on logging for {topic}" if good else f"how do I disable logging for {topic}"
        pair = LabelledPair(new, f"how do I enable logging for {topic}", good, "feedback", start + i, "plain")
        both = vectors.normal(size=(2, 384))  # what labelled.score fills in: (question, cached) unit vectors
        both /= np.linalg.norm(both, axis=1, keepdims=True)
        made.append(dataclasses.replace(pair, similarity=rng.uniform(0.8, 0.95), vectors=both))
    return with_head_logits(made)


def with_head_logits(pairs: list[LabelledPair]) -> list[LabelledPair]:
    """What ``labelled.score`` fills in for a model that weighs the interaction head (tokens from ``TokenStub``)."""
    interaction = features.Weights.of(shipped().weights).interaction
    assert interaction is not None
    heads = Heads.find(interaction.heads, (decision.DATA_DIR,))
    stub = TokenStub()
    logits = heads.logits(
        stub.token_embeddings([p.cached for p in pairs]), stub.token_embeddings([p.question for p in pairs])
    )
    return [dataclasses.replace(p, head_logit=float(z)) for p, z in zip(pairs, logits, strict=True)]


def stingy_model() -> decision.DecisionConfig:
    """The shipped model with a bias that refuses every pair: safe, and no use to this user."""
    config = shipped()
    return dataclasses.replace(config, weights=dict(config.weights, bias=-12.0), version="pair-features-stingy")


def scored_with(
    config: decision.DecisionConfig, pairs: list[LabelledPair], directions: bool = True
) -> list[LabelledPair]:
    model = features.Weights.of(config.weights)
    weighed = refit._directions(pairs, model) if directions else np.zeros(len(pairs))
    scores = model.scores(refit._rows(pairs), weighed)
    return [dataclasses.replace(p, score=float(s)) for p, s in zip(pairs, scores, strict=True)]


def test_too_few_wrong_labels_refit_nothing_and_say_how_many_are_needed() -> None:
    config = shipped()
    older, newer = labelled(100, start=1, seed=1), labelled(60, start=1000, seed=2)
    found = refit.refit(older, newer, config, calibrate.outcome(newer, config.threshold, config.floor), 0.01)
    assert not found.accepted and "at least 299" in found.why and found.artefact is None


def test_a_refit_that_serves_more_on_newer_labels_within_the_bound_is_accepted_and_loads() -> None:
    config = stingy_model()
    older = scored_with(config, labelled(1400, start=1, seed=3))
    newer = scored_with(config, labelled(900, start=5000, seed=4))
    baseline = calibrate.outcome(newer, config.threshold, config.floor)
    found = refit.refit(older, newer, config, baseline, 0.01)
    assert found.accepted, found.why
    assert found.after is not None and found.shipped_after is not None and found.artefact is not None
    assert baseline.served == 0 and "serves more" in found.why
    assert found.after.served > baseline.served and found.after.wrong_bound <= 0.01
    assert found.shipped_after.wrong_bound <= 0.01  # the shipped calibration topics keep the bound
    assert found.shipped_rows > 0 and found.user_rows == 1400
    # The artefact is the model that was measured: loaded as the runtime loads it, it scores the newer pairs alike.
    loaded = decision.read_config(write_artefact(found.artefact))
    assert loaded.version == found.version and loaded.threshold == found.threshold
    rescored = scored_with(loaded, newer)
    assert calibrate.outcome(rescored, loaded.threshold, loaded.floor) == found.after
    runtime = decision.FeatureModel(loaded, embedder=TokenStub)
    pair = newer[0]
    assert runtime.score(pair.question, [pair.cached], [pair.similarity], pair.vectors)[0] == pytest.approx(
        rescored[0].score
    )


def write_artefact(data: bytes) -> Path:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="refit-"))
    (folder / "decision.toml").write_bytes(data)
    return folder


def test_a_learned_file_may_point_only_at_a_model_folder_beside_it(aicache_home: Path) -> None:
    for bad in ("../elsewhere", "/etc", "decision/../../x"):
        with pytest.raises(ConfigError, match=r"decision\.directory"):
            settings_repo.parse_learned(f'[decision]\ndirectory = "{bad}"\n'.encode(), "learned.toml")
    folder = settings_repo.default_dir()
    folder.mkdir(parents=True)
    (folder / "learned.toml").write_text('[decision]\ndirectory = "decision"\n', encoding="utf-8")
    assert settings_repo.learned_settings()["decision"]["directory"] == str(folder / "decision")
    assert decision.model_directory(Settings(settings_repo.learned_settings())) == (folder / "decision").resolve()


def test_the_shipped_calibration_bounds_a_refit_for_each_kind_of_near_miss() -> None:
    from aicache import stats

    config = shipped()
    rows = refit._shipped_rows(config.directory)
    assert rows is not None
    wrong = rows.calibration_y == 0
    assert set(np.unique(rows.calibration_kind[wrong])) == {"question", "pair", "paraphrase", "generated", "cross"}
    model = features.Weights.of(config.weights)
    threshold = rows.threshold(model, config.floor, 0.01)
    assert threshold is not None
    scores, eligible = model.scores(rows.calibration_x, rows.calibration_d), rows.calibration_x[:, 0] >= config.floor
    pooled = stats.most_permissive([float(s) for s in scores[wrong & eligible]], int(wrong.sum()), 0.01)
    assert pooled is not None and threshold > pooled  # the pool alone would let the hardest kind through more
    for kind in np.unique(rows.calibration_kind[wrong]):
        of_kind = wrong & (rows.calibration_kind == kind)
        served = int((of_kind & eligible & (scores >= threshold)).sum())
        assert stats.upper_bound(served, int(of_kind.sum())) <= 0.01, kind


def test_a_refit_weighs_the_directions_only_on_the_embedding_model_they_were_fitted_on() -> None:
    config = stingy_model()
    directions = features.Weights.of(config.weights).directions
    assert directions is not None
    older, newer = labelled(1400, start=1, seed=3), labelled(900, start=5000, seed=4)
    revectored = lambda pairs, seed: [  # noqa: E731 (the same pairs, other vectors)
        dataclasses.replace(p, vectors=q.vectors)
        for p, q in zip(pairs, labelled(len(pairs), start=0, seed=seed), strict=True)
    ]
    other_older, other_newer = revectored(older, 13), revectored(newer, 14)

    def artefact(older: list[LabelledPair], newer: list[LabelledPair], embedder: str) -> bytes | None:
        scored = scored_with(config, newer, directions=embedder == directions.embedder)
        baseline = calibrate.outcome(scored, config.threshold, config.floor)
        return refit.refit(older, scored, config, baseline, 0.01, embedder).artefact

    # Another model's vectors mean nothing to these weights: the refit does not depend on them, as the runtime.
    assert artefact(older, newer, "another-model@0") == artefact(other_older, other_newer, "another-model@0")
    assert artefact(older, newer, directions.embedder) != artefact(older, newer, "another-model@0")
