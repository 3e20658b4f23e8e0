"""The feature model: what a pair of questions looks like to the shipped hit decision, and how it is scored.

``pair_features`` describes (cached question, new question) with cheap features: the cosine similarity of the
embeddings, which of the verifier's rules fire, whether it accepts, word and concept overlap, length ratios.
A *basis* turns those into the regression's inputs:

* ``linear``: the features as they are (models before 2026-12-04);
* ``hinges``: the features, plus hinge functions of the cosine and of the two overlaps (``max(0, x - knot)``),
  plus every other feature multiplied by the cosine. A rule that fires means more between two near-identical
  questions than between two loosely related ones, and the safe region is not a straight line in the cosine;
  a linear model over the raw features could say neither.

``Weights`` is a standardised logistic regression over the basis: the runtime scores with it (``decision.
FeatureModel``), ``learn`` refits it (``aicache/learn/refit.py``), ``make model`` fits it (``training/``).
Everything here is numpy and the verifier's word analysis: nothing heavy on the hit path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aicache.errors import ConfigError

RULES = (
    "different numbers",
    "different versions",
    "different identifiers",
    "opposite words",
    "negation",
    "opposite direction",
    "different action",
    "only in the question",
    "only in the cached question",
    "different subject",
    "one word replaced",
    "roles swapped",
    "the question adds",
    "the question says",
    "different ",  # named things of one kind: "different language: ..." (after the specific "different ...")
)
FEATURES = (
    "cosine",
    "cosine squared",
    "verifier accepts",
    "verifier gray zone",
    "no rule fired",
    *(f"rule: {r.strip()}" for r in RULES),
    "word overlap",
    "length ratio",
    "log length ratio squared",
    "words on one side only",
    "content overlap",
    "content on one side only",
)

# The hinge basis: knots where the regression may bend. Fixed before training, not fitted.
COSINE_KNOTS = (0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
OVERLAP_KNOTS = (0.3, 0.5, 0.7, 0.85)
HINGED = (("cosine", COSINE_KNOTS), ("word overlap", OVERLAP_KNOTS), ("content overlap", OVERLAP_KNOTS))
_TIMES_COSINE = FEATURES[2:]  # every feature but the cosine and its square, multiplied by the cosine

BASES = ("linear", "hinges")
DEFAULT_BASIS = "hinges"


def terms(basis: str) -> tuple[str, ...]:
    """The names of the regression's inputs under ``basis``, in the order ``expand`` makes them."""
    if basis == "linear":
        return FEATURES
    if basis == "hinges":
        hinges = tuple(f"{name} above {knot}" for name, knots in HINGED for knot in knots)
        return FEATURES + hinges + tuple(f"cosine x {name}" for name in _TIMES_COSINE)
    raise ConfigError(f"unknown feature basis {basis!r} (known: {', '.join(BASES)})")


def expand(rows: Any, basis: str) -> Any:
    """The regression's inputs (one row per pair) from rows of ``pair_features``."""
    import numpy as np

    x = np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES))
    if basis == "linear":
        return x
    terms(basis)  # an unknown basis is refused with its name
    column = {name: x[:, FEATURES.index(name)] for name, _ in HINGED}
    hinges = [np.maximum(0.0, column[name] - knot) for name, knots in HINGED for knot in knots]
    cosine = x[:, :1]
    return np.hstack([x, np.column_stack(hinges), x[:, 2:] * cosine])


@dataclass(frozen=True)
class Weights:
    """A feature model's weights: a standardised logistic regression over the basis, p = sigmoid(((inputs -
    mean) / scale) . coef + bias). The runtime scores with them; ``learn`` refits them; ``make model`` writes
    them."""

    mean: Any  # numpy arrays, one value per input of the basis
    scale: Any
    coef: Any
    bias: float
    basis: str = "linear"

    @classmethod
    def of(cls, table: dict[str, Any]) -> Weights:
        """From the ``[features]`` table of a decision.toml (or anything with the same keys); a table without
        ``basis`` is a linear model (the files written before the basis existed)."""
        import numpy as np

        mean, scale, coef = (np.asarray(table[key], dtype=np.float64) for key in ("mean", "scale", "coef"))
        basis = str(table.get("basis", "linear"))
        if not (len(mean) == len(scale) == len(coef) == len(terms(basis))):
            raise ConfigError(f"the weights do not match the {basis} basis ({len(terms(basis))} inputs)")
        return cls(mean, scale, coef, float(table["bias"]), basis)

    def inputs(self, rows: Any) -> Any:
        """The standardised inputs of rows of ``pair_features``."""
        return (expand(rows, self.basis) - self.mean) / self.scale

    def scores(self, rows: Any) -> Any:
        """The probability for each row of ``pair_features``."""
        return sigmoid(self.inputs(rows) @ self.coef + self.bias)

    def to_toml(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "bias": float(self.bias),
        }


def pair_features(cached: str, new: str, cosine: float) -> list[float]:
    """The features of (cached question, new question) with their embeddings' cosine similarity."""
    import math
    import re

    from aicache.semantic import verify

    lex = verify.load_lexicon()
    new_analysis, cached_analysis = lex.analyse(new), lex.analyse(cached)
    reasons = verify.compare(new_analysis, cached_analysis, lex)
    # a negative cosine is under any threshold: refused for that alone, whatever the rules say
    verdict = verify.verdict_of(new_analysis, cached_analysis, reasons, cosine, 0.0) if cosine >= 0.0 else None
    flags = [0.0] * len(RULES)
    for reason in reasons:
        for i, prefix in enumerate(RULES):
            if reason.startswith(prefix):
                flags[i] = 1.0
                break
    words = re.compile(r"[a-z0-9]+")
    wa, wb = set(words.findall(cached.lower())), set(words.findall(new.lower()))
    la, lb = max(1, len(cached.split())), max(1, len(new.split()))
    ca, cb = cached_analysis.content, new_analysis.content
    return [
        cosine,
        cosine * cosine,
        float(verdict is not None and verdict.accepted),
        float(verdict is not None and verdict.gray_zone),
        float(not reasons),
        *flags,
        len(wa & wb) / max(1, len(wa | wb)),
        min(la, lb) / max(la, lb),
        math.log(la / lb) ** 2,
        float(len(wa ^ wb)),
        # the same on what the words mean (synonyms one concept, function words left out): a changed "the" is
        # not a changed "merge"
        len(ca & cb) / max(1, len(ca | cb)),
        float(len(ca ^ cb)),
    ]


def sigmoid(logits: Any) -> Any:
    import numpy as np

    # exp overflows past ~709
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, dtype=np.float64), -500.0, 500.0)))
