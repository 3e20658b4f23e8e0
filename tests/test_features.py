"""The feature model's basis and weights (aicache/semantic/features.py): no model, no embedder."""

from __future__ import annotations

import numpy as np
import pytest

from aicache.errors import ConfigError
from aicache.semantic import features


def row(**values: float) -> list[float]:
    out = [0.0] * len(features.FEATURES)
    for name, value in values.items():
        out[features.FEATURES.index(name.replace("_", " "))] = value
    return out


def test_the_hinge_basis_names_every_input_it_makes() -> None:
    inputs = features.expand([row(cosine=0.9, no_rule_fired=1.0, word_overlap=0.6)], "hinges")
    names = features.terms("hinges")
    assert inputs.shape == (1, len(names))
    value = dict(zip(names, inputs[0].tolist(), strict=True))
    assert value["cosine above 0.85"] == pytest.approx(0.05)
    assert value["cosine above 0.9"] == 0.0 and value["cosine above 0.95"] == 0.0
    assert value["word overlap above 0.5"] == pytest.approx(0.1) and value["word overlap above 0.7"] == 0.0
    assert value["cosine x no rule fired"] == pytest.approx(0.9)
    assert value["cosine x verifier accepts"] == 0.0
    assert value["cosine"] == 0.9  # the features themselves come first, unchanged


def test_the_linear_basis_is_the_features_themselves() -> None:
    rows = [row(cosine=0.7, word_overlap=0.2), row(cosine=0.95, content_overlap=1.0)]
    assert features.expand(rows, "linear").tolist() == rows
    assert features.terms("linear") == features.FEATURES


def table(basis: str | None, size: int) -> dict[str, object]:
    weights: dict[str, object] = {"mean": [0.0] * size, "scale": [1.0] * size, "coef": [0.0] * size, "bias": 0.5}
    return weights if basis is None else weights | {"basis": basis}


def test_weights_without_a_basis_are_a_linear_model_as_before_the_basis_existed() -> None:
    weights = features.Weights.of(table(None, len(features.FEATURES)))
    assert weights.basis == "linear"
    assert weights.scores([row(cosine=0.9)]).tolist() == pytest.approx([features.sigmoid(0.5)])


def test_weights_that_do_not_match_their_basis_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="hinges basis"):
        features.Weights.of(table("hinges", len(features.FEATURES)))
    with pytest.raises(ConfigError, match="unknown feature basis 'splines'"):
        features.Weights.of(table("splines", len(features.FEATURES)))


def test_a_weight_on_an_input_moves_the_score_of_rows_that_have_it() -> None:
    size = len(features.terms("hinges"))
    coef = np.zeros(size)
    coef[features.terms("hinges").index("cosine x rule: opposite words")] = -10.0
    weights = features.Weights.of(table("hinges", size) | {"coef": coef.tolist(), "bias": 2.0})
    clean, opposite = weights.scores([row(cosine=0.9), row(cosine=0.9, **{"rule:_opposite_words": 1.0})])
    assert clean == pytest.approx(features.sigmoid(2.0)) and opposite == pytest.approx(features.sigmoid(-7.0))
    again = features.Weights.of(weights.to_toml())  # what decision.toml holds reads back as the same model
    assert again.basis == "hinges" and again.scores([row(cosine=0.9)]).tolist() == [clean]


def with_directions(dim: int = 4, coef: list[float] | None = None, **extra: object) -> features.Weights:
    size = len(features.terms("hinges"))
    directions = {
        "direction_mean": [0.0] * (2 * dim),
        "direction_scale": [1.0] * (2 * dim),
        "direction_coef": coef or [0.0] * (2 * dim),
        "direction_embedder": "an-embedder@0123",
    }
    return features.Weights.of(table("hinges", size) | directions | extra)


def test_the_directions_tell_apart_two_pairs_the_other_features_cannot() -> None:
    # Along dimension 0 the two questions differ (|u - v| weighs -8): the cosine is the same for both pairs.
    weights = with_directions(coef=[-8.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    cached = np.array([[0.6, 0.8, 0.0, 0.0], [0.0, 0.8, 0.6, 0.0]])
    new = np.array([[0.0, 0.8, 0.6, 0.0], [0.0, 0.8, 0.0, 0.6]])
    assert (cached * new).sum(axis=1).tolist() == pytest.approx([0.64, 0.64])
    logits = weights.direction_logits(cached, new)
    assert logits.tolist() == pytest.approx([-4.8, 0.0])
    rows = [row(cosine=0.64), row(cosine=0.64)]
    changed, same = weights.scores(rows, logits)
    assert same == pytest.approx(features.sigmoid(0.5)) and changed == pytest.approx(features.sigmoid(0.5 - 4.8))
    with pytest.raises(ValueError, match="fixed part"):
        weights.scores(rows)  # a model that weighs directions never scores without them


def test_the_directions_part_stays_within_the_range_seen_in_training() -> None:
    weights = with_directions(coef=[50.0] * 8, direction_range=[-1.5, 2.0])
    far = weights.direction_logits(np.array([[1.0, 0.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 0.0, 1.0]]))
    assert far.tolist() == [2.0]  # vectors unlike the training rows' would otherwise move the score by 100
    again = features.Weights.of(weights.to_toml())
    assert again.directions is not None and again.directions.embedder == "an-embedder@0123"
    assert (again.directions.low, again.directions.high) == (-1.5, 2.0)
    with pytest.raises(ConfigError, match="4-dimensional"):
        weights.direction_logits(np.ones((1, 6)) / 6**0.5, np.ones((1, 6)) / 6**0.5)


def test_weights_without_directions_add_nothing_for_them() -> None:
    weights = features.Weights.of(table("hinges", len(features.terms("hinges"))))
    assert weights.directions is None and "direction_coef" not in weights.to_toml()
    assert weights.direction_logits(np.eye(3, 4), np.eye(3, 4)).tolist() == [0.0, 0.0, 0.0]


def with_answer(coef: list[float], **extra: object) -> features.Weights:
    size = len(features.ANSWER_TERMS)
    answer = {"answer_mean": [0.0] * size, "answer_scale": [1.0] * size, "answer_coef": coef, "answer_embedder": "e@1"}
    return features.Weights.of(table("hinges", len(features.terms("hinges"))) | answer | extra)


def test_the_answer_part_names_every_input_it_makes() -> None:
    inputs = features.answer_inputs([0.65], [0.5], [0.8])
    assert inputs.shape == (1, len(features.ANSWER_TERMS))
    value = dict(zip(features.ANSWER_TERMS, inputs[0].tolist(), strict=True))
    assert value["answer cosine"] == pytest.approx(0.65) and value["answer cosine - own"] == pytest.approx(0.15)
    assert value["answer cosine above 0.6"] == pytest.approx(0.05) and value["answer cosine above 0.7"] == 0.0
    assert value["answer cosine - own above 0.1"] == pytest.approx(0.05)
    assert value["answer cosine x cosine"] == pytest.approx(0.52)


def test_a_question_closer_to_the_cached_answer_scores_higher_and_within_the_range_seen() -> None:
    coef = [0.0] * len(features.ANSWER_TERMS)
    coef[features.ANSWER_TERMS.index("answer cosine")] = 4.0
    weights = with_answer(coef, answer_range=[-1.0, 2.0])
    logits = weights.answer_logits([0.2, 0.4, 0.9], [0.5, 0.5, 0.5], [0.8, 0.8, 0.8])
    assert logits.tolist() == pytest.approx([0.8, 1.6, 2.0])  # the last is held at the top of its range
    rows = [row(cosine=0.8)] * 3
    low, high, _ = weights.scores(rows, logits)
    assert high > low
    again = features.Weights.of(weights.to_toml())
    assert again.answer is not None and (again.answer.low, again.answer.high) == (-1.0, 2.0)
    assert features.Weights.of(table("hinges", len(features.terms("hinges")))).answer is None
    with pytest.raises(ConfigError, match="answer weights"):
        with_answer([0.0, 1.0])
