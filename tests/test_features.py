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
