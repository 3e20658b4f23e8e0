"""Design 2: a logistic regression over cheap features, and the exact vetoes.

The features of a pair (``aicache.semantic.features.pair_features``, shared with the runtime): the cosine
similarity of the embeddings, which of the verifier's rules fired (one feature each), whether the verifier
accepted, word overlap and length ratio; the basis (``features.expand``) adds hinges and products with the
cosine. The regression is standardised and fitted with scikit-learn on the train split; the runtime only needs
the weights (``decision.toml``, ``[features]``).

The *exact vetoes* are the verifier rules that need no judgement: two different numbers, two different versions
of one named thing, two different identifiers (codes mixing letters and digits). They can sit in front of any
model; ``training/compare.py`` measures with and without them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from aicache.semantic import verify
from aicache.semantic.features import (
    ANSWER_TERMS,
    DEFAULT_BASIS,
    INTERACTION_TERMS,
    Weights,
    answer_inputs,
    direction_inputs,
    expand,
    interaction_inputs,
    pair_features,
    terms,
)


def vetoed(a: str, b: str) -> bool:
    """An exact rule refuses new question ``b`` for cached ``a``: different numbers, versions or identifiers."""
    lex = verify.load_lexicon()
    query, cached = lex.analyse(b), lex.analyse(a)
    return bool(
        verify._numbers(query, cached)
        or verify._different_versions(query, cached)
        or verify._identifiers(query, cached)
    )


def rule_reasons(a: str, b: str) -> list[str]:
    """The verifier's reasons for refusing new question ``b`` for cached ``a`` (its rules only, no similarity)."""
    lex = verify.load_lexicon()
    return list(verify.compare(lex.analyse(b), lex.analyse(a), lex))


def features(a: str, b: str, cosine: float) -> list[float]:
    return pair_features(a, b, cosine)


def fit_standardised(
    inputs: Any, labels: Sequence[int], weights: Sequence[float] | None = None, seed: int = 0, c: float = 1.0
) -> tuple[list[float], list[float], list[float], float]:
    """A logistic regression on standardised inputs (one row per pair): their mean, scale, coef and bias."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mean, scale = inputs.mean(axis=0), inputs.std(axis=0) + 1e-9
    model = LogisticRegression(C=c, max_iter=10000, random_state=seed).fit(
        (inputs - mean) / scale, np.asarray(labels), sample_weight=None if weights is None else np.asarray(weights)
    )
    return mean.tolist(), scale.tolist(), model.coef_[0].tolist(), float(model.intercept_[0])


class FeatureModel:
    """Standardised logistic regression (scikit-learn to fit; a dot product to score); with ``directions``, over
    ``features.direction_inputs`` of the two questions' unit vectors as well; with ``heads`` (the digest of an
    ``interaction.npz``), over the interaction head's logit and that logit times the cosine; with ``answers``,
    over ``features.answer_inputs`` of the cached answer's cosines."""

    def __init__(
        self,
        basis: str = DEFAULT_BASIS,
        directions: bool = False,
        embedder: str = "",
        c: float = 1.0,
        heads: str | None = None,
        answers: bool = False,
    ) -> None:
        self.basis = basis
        self.answers = answers
        self.c = c  # the regression's inverse L2 strength
        self.directions = directions
        self.heads = heads
        self.embedder = embedder  # the embedding model's id (``embeddings.model_id``): its vectors only
        self.mean: list[float] = []
        self.scale: list[float] = []
        self.coef: list[float] = []
        self.bias = 0.0
        self.direction_range = [-math.inf, math.inf]
        self.interaction_range = [-math.inf, math.inf]
        self.answer_range = [-math.inf, math.inf]

    def fit(
        self,
        rows: Sequence[Sequence[float]],
        labels: Sequence[int],
        weights: Sequence[float] | None = None,
        seed: int = 0,
        vectors: tuple[Any, Any] | None = None,
        head_logits: Sequence[float] | None = None,
        answer_cosines: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> FeatureModel:
        """``vectors``: the cached and the new questions' unit vectors, one row per pair (with ``directions``);
        ``head_logits``: the interaction head's logit of each pair (with ``heads``); ``answer_cosines``: the new
        and the cached question's cosines with the cached answer (with ``answers``)."""
        import numpy as np

        inputs = expand(rows, self.basis)
        if self.directions:
            inputs = np.hstack([inputs, direction_inputs(*self._needed(vectors))])
        if self.heads is not None:
            inputs = np.hstack([inputs, interaction_inputs(self._logits(head_logits), _cosines(rows))])
        if self.answers:
            inputs = np.hstack([inputs, answer_inputs(*self._answered(answer_cosines), _cosines(rows))])
        self.mean, self.scale, self.coef, self.bias = fit_standardised(inputs, labels, weights, seed, self.c)
        # the range each fixed part took on the training rows bounds it at run time
        if self.directions:
            seen = Weights.of(self.weights).direction_logits(*self._needed(vectors))
            self.direction_range = [float(seen.min()), float(seen.max())]
        if self.heads is not None:
            seen = Weights.of(self.weights).interaction_logits(self._logits(head_logits), _cosines(rows))
            self.interaction_range = [float(seen.min()), float(seen.max())]
        if self.answers:
            seen = Weights.of(self.weights).answer_logits(*self._answered(answer_cosines), _cosines(rows))
            self.answer_range = [float(seen.min()), float(seen.max())]
        return self

    @property
    def weights(self) -> dict[str, object]:
        """The ``[features]`` table of decision.toml."""
        base = len(terms(self.basis))  # the basis's inputs come first; the directions' follow
        table: dict[str, object] = {
            "basis": self.basis,
            "mean": self.mean[:base],
            "scale": self.scale[:base],
            "coef": self.coef[:base],
            "bias": self.bias,
        }
        end = base
        for prefix, size, used in (
            ("direction", len(self.coef) - base - self._tail(), self.directions),
            ("interaction", len(INTERACTION_TERMS), self.heads is not None),
            ("answer", len(ANSWER_TERMS), self.answers),
        ):
            if not used:
                continue
            for key, values in (("mean", self.mean), ("scale", self.scale), ("coef", self.coef)):
                table[f"{prefix}_{key}"] = values[end : end + size]
            table[f"{prefix}_range"] = getattr(self, f"{prefix}_range")
            table[f"{prefix}_embedder"] = self.embedder
            end += size
        if self.heads is not None:
            table["interaction_heads"] = self.heads
        return table

    def _tail(self) -> int:
        """How many inputs follow the directions'."""
        return (len(INTERACTION_TERMS) if self.heads is not None else 0) + (len(ANSWER_TERMS) if self.answers else 0)

    def predict(
        self,
        rows: Sequence[Sequence[float]],
        vectors: tuple[Any, Any] | None = None,
        head_logits: Sequence[float] | None = None,
        answer_cosines: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> list[float]:
        """Scored as the runtime scores them (``features.Weights``)."""
        model = Weights.of(self.weights)
        fixed = self.fixed_logits(rows, vectors, head_logits, answer_cosines) if model.weighs_embeddings else None
        return [float(p) for p in model.scores(rows, fixed)]

    def fixed_logits(
        self,
        rows: Sequence[Sequence[float]],
        vectors: tuple[Any, Any] | None = None,
        head_logits: Sequence[float] | None = None,
        answer_cosines: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> list[float]:
        """The fixed part of each pair's logit, the directions', the interaction head's and the answer's (zeros
        without):
        ``rows.npz`` keeps it for ``learn``'s refit."""
        import numpy as np

        model = Weights.of(self.weights)
        fixed = np.zeros(len(rows))
        if self.directions:
            fixed += model.direction_logits(*self._needed(vectors))
        if self.heads is not None:
            fixed += model.interaction_logits(self._logits(head_logits), _cosines(rows))
        if self.answers:
            fixed += model.answer_logits(*self._answered(answer_cosines), _cosines(rows))
        return [float(d) for d in fixed]

    def _needed(self, vectors: tuple[Any, Any] | None) -> tuple[Any, Any]:
        if vectors is None:
            raise ValueError("a model over the embeddings' directions needs both questions' vectors")
        return vectors

    def _answered(
        self, answer_cosines: tuple[Sequence[float], Sequence[float]] | None
    ) -> tuple[Sequence[float], Sequence[float]]:
        if answer_cosines is None:
            raise ValueError("a model over the cached answer needs its cosines for each pair")
        return answer_cosines

    def _logits(self, head_logits: Sequence[float] | None) -> Sequence[float]:
        if head_logits is None:
            raise ValueError("a model over the interaction head needs its logit for each pair")
        return head_logits


def _cosines(rows: Sequence[Sequence[float]]) -> list[float]:
    return [float(r[0]) for r in rows]  # pair_features' first feature is the cosine
