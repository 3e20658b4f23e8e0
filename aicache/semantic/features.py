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

A model may also weigh the *directions* in which the two questions' embeddings differ (``directions``): the
cosine is the sum of ``u * v`` over the dimensions of the two unit vectors, and sums away which dimensions agree;
``|u - v|`` and ``u * v`` per dimension keep it, so the regression can learn that some directions of difference
change the answer and others are only wording. Their part of the logit is ``Weights.direction_logits``; it needs
both vectors, which the semantic tier holds already.

A model may also weigh the logit of the *interaction head* (``interaction``), which reads the two questions word
by word and so sees who acts on whom: its part of the logit is ``Weights.interaction_logits``.

A model may also weigh the cached *answer* (``answer``): how close the new question is to the answer cached for
the other one, against how close the cached question itself is to it. A paraphrase asks for what the answer says;
a near-miss that shares the cached question's words often does not. Its part is ``Weights.answer_logits``; it
needs the answer's vector, which the store keeps beside the question's.
The directions', the head's and the answer's parts are the *fixed part* of the logit: ``learn``'s refit keeps
them as they are.
Everything here is numpy and the verifier's word analysis: nothing heavy on the hit path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Self

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
    directions: Directions | None = None
    interaction: Interaction | None = None
    answer: Answer | None = None

    @classmethod
    def of(cls, table: dict[str, Any]) -> Weights:
        """From the ``[features]`` table of a decision.toml (or anything with the same keys); a table without
        ``basis`` is a linear model (the files written before the basis existed), one without
        ``direction_coef`` weighs no directions."""
        import numpy as np

        mean, scale, coef = (np.asarray(table[key], dtype=np.float64) for key in ("mean", "scale", "coef"))
        basis = str(table.get("basis", "linear"))
        if not (len(mean) == len(scale) == len(coef) == len(terms(basis))):
            raise ConfigError(f"the weights do not match the {basis} basis ({len(terms(basis))} inputs)")
        directions = Directions.of(table) if "direction_coef" in table else None
        interaction = Interaction.of(table) if "interaction_coef" in table else None
        answer = Answer.of(table) if "answer_coef" in table else None
        return cls(mean, scale, coef, float(table["bias"]), basis, directions, interaction, answer)

    @property
    def weighs_embeddings(self) -> bool:
        """Whether part of the logit comes from the embedding model's vectors or tokens (``fixed_logits``)."""
        return self.directions is not None or self.interaction is not None or self.answer is not None

    def inputs(self, rows: Any) -> Any:
        """The standardised inputs of rows of ``pair_features``."""
        return (expand(rows, self.basis) - self.mean) / self.scale

    def scores(self, rows: Any, fixed_logits: Any = None) -> Any:
        """The probability for each row of ``pair_features``; a model that weighs the embeddings needs the fixed
        part of the logit for each row too (``fixed_logits``: ``direction_logits`` + ``interaction_logits``)."""
        logits = self.inputs(rows) @ self.coef + self.bias
        if self.weighs_embeddings:
            if fixed_logits is None:
                raise ValueError("this model weighs the embeddings: the fixed part of its logits is needed")
            logits = logits + fixed_logits
        return sigmoid(logits)

    def direction_logits(self, cached: Any, new: Any) -> Any:
        """The directions' part of the logit for pairs of unit vectors (one row per pair); zeros without."""
        import numpy as np

        if self.directions is None:
            return np.zeros(len(np.atleast_2d(cached)))
        return self.directions.logits(cached, new)

    def interaction_logits(self, head_logits: Any, cosines: Any) -> Any:
        """The interaction head's part of the logit, from its logit and the cosine of each pair; zeros without."""
        import numpy as np

        if self.interaction is None:
            return np.zeros(len(np.atleast_1d(cosines)))
        return self.interaction.logits(head_logits, cosines)

    def answer_logits(self, with_answer: Any, own: Any, cosines: Any) -> Any:
        """The cached answer's part of the logit: from the new question's cosine with the cached answer, the
        cached question's own cosine with it, and the two questions' cosine; zeros without."""
        import numpy as np

        if self.answer is None:
            return np.zeros(len(np.atleast_1d(cosines)))
        return self.answer.logits(with_answer, own, cosines)

    def to_toml(self) -> dict[str, Any]:
        table = {
            "basis": self.basis,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "bias": float(self.bias),
        }
        for part in (self.directions, self.interaction, self.answer):
            table |= part.to_toml() if part is not None else {}
        return table


@dataclass(frozen=True)
class FixedPart:
    """The regression's weights over inputs made from the embedding model's output (its vectors or its token
    embeddings), standardised like the rest and written under one key prefix in decision.toml. This part of the
    logit is kept within the range it took on the training rows (``low``, ``high``): inputs unlike any the
    model saw (another embedding model's, say) would otherwise move the score without bound; and it is weighed
    only on the output of ``embedder`` (its ``embeddings.model_id``). ``learn``'s refit keeps it fixed."""

    PREFIX: ClassVar[str] = ""
    NAMES: ClassVar[tuple[str, ...]] = ("embedder",)  # the part's string fields, written as PREFIX_name

    mean: Any
    scale: Any
    coef: Any
    embedder: str = ""
    low: float = -math.inf
    high: float = math.inf

    @classmethod
    def of(cls, table: dict[str, Any]) -> Self:
        import numpy as np

        mean, scale, coef = (np.asarray(table[f"{cls.PREFIX}_{key}"], dtype=np.float64) for key in KEYS)
        cls.check(mean, scale, coef)
        low, high = (float(v) for v in table.get(f"{cls.PREFIX}_range", (-math.inf, math.inf)))
        names = {name: str(table.get(f"{cls.PREFIX}_{name}", "")) for name in cls.NAMES}
        return cls(mean, scale, coef, low=low, high=high, **names)

    @classmethod
    def check(cls, mean: Any, scale: Any, coef: Any) -> None:
        """Raise ConfigError when the arrays cannot be this part's weights."""

    def clipped_logits(self, inputs: Any) -> Any:
        import numpy as np

        return np.clip(((inputs - self.mean) / self.scale) @ self.coef, self.low, self.high)

    def to_toml(self) -> dict[str, Any]:
        return (
            {f"{self.PREFIX}_{key}": getattr(self, key).tolist() for key in KEYS}
            | {f"{self.PREFIX}_{name}": getattr(self, name) for name in self.NAMES}
            | {f"{self.PREFIX}_range": [self.low, self.high]}
        )


KEYS = ("mean", "scale", "coef")


@dataclass(frozen=True)
class Directions(FixedPart):
    """The weights over ``direction_inputs`` of the two questions' unit vectors."""

    PREFIX = "direction"

    @classmethod
    def check(cls, mean: Any, scale: Any, coef: Any) -> None:
        if not len(mean) == len(scale) == len(coef) or len(coef) % 2:
            raise ConfigError("the direction weights are not one mean, scale and coef per input")

    def logits(self, cached: Any, new: Any) -> Any:
        inputs = direction_inputs(cached, new)
        if inputs.shape[1] != len(self.coef):
            raise ConfigError(f"the direction weights are for {len(self.coef) // 2}-dimensional embeddings")
        return self.clipped_logits(inputs)


@dataclass(frozen=True)
class Interaction(FixedPart):
    """The weights over the interaction head's logit ``z`` and ``z * cosine`` (``interaction_inputs``), for the
    heads whose weights have the digest ``heads`` (``interaction.Heads.digest``)."""

    PREFIX = "interaction"
    NAMES = ("embedder", "heads")

    heads: str = ""

    @classmethod
    def check(cls, mean: Any, scale: Any, coef: Any) -> None:
        if not len(mean) == len(scale) == len(coef) == len(INTERACTION_TERMS):
            raise ConfigError(f"the interaction weights are not one mean, scale and coef per {INTERACTION_TERMS}")

    def logits(self, head_logits: Any, cosines: Any) -> Any:
        return self.clipped_logits(interaction_inputs(head_logits, cosines))


INTERACTION_TERMS = ("interaction head", "interaction head x cosine")


@dataclass(frozen=True)
class Answer(FixedPart):
    """The weights over ``answer_inputs``."""

    PREFIX = "answer"

    @classmethod
    def check(cls, mean: Any, scale: Any, coef: Any) -> None:
        if not len(mean) == len(scale) == len(coef) == len(ANSWER_TERMS):
            raise ConfigError(f"the answer weights are not one mean, scale and coef per {len(ANSWER_TERMS)} inputs")

    def logits(self, with_answer: Any, own: Any, cosines: Any) -> Any:
        return self.clipped_logits(answer_inputs(with_answer, own, cosines))


# Knots of the answer's cosines, like the cosine's: fixed before training, not fitted.
ANSWER_KNOTS = (0.3, 0.4, 0.5, 0.6, 0.7)
ANSWER_GAIN_KNOTS = (-0.1, 0.0, 0.1)
ANSWER_TERMS = (
    "answer cosine",
    "answer cosine - own",
    *(f"answer cosine above {k}" for k in ANSWER_KNOTS),
    *(f"answer cosine - own above {k}" for k in ANSWER_GAIN_KNOTS),
    "answer cosine x cosine",
    "answer cosine - own x cosine",
)


def answer_inputs(with_answer: Any, own: Any, cosines: Any) -> Any:
    """The regression's inputs from the cached answer: the new question's cosine with it (``with_answer``), that
    minus the cached question's own cosine with it (``own``: an answer that restates its question is close to
    any question worded like it), their hinges, and each times the two questions' cosine."""
    import numpy as np

    def column(values: Any) -> Any:
        return np.atleast_1d(np.asarray(values, dtype=np.float64))

    near, cosine = column(with_answer), column(cosines)
    gain = near - column(own)
    hinges = [np.maximum(0.0, near - k) for k in ANSWER_KNOTS] + [np.maximum(0.0, gain - k) for k in ANSWER_GAIN_KNOTS]
    return np.column_stack([near, gain, *hinges, near * cosine, gain * cosine])


def interaction_inputs(head_logits: Any, cosines: Any) -> Any:
    """The regression's inputs from the interaction head: its logit, and its logit times the cosine."""
    import numpy as np

    z = np.atleast_1d(np.asarray(head_logits, dtype=np.float64))
    return np.column_stack([z, z * np.atleast_1d(np.asarray(cosines, dtype=np.float64))])


def direction_inputs(cached: Any, new: Any) -> Any:
    """``|u - v|`` then ``u * v`` per dimension, for pairs of unit vectors (one row per pair): symmetric in the
    two questions."""
    import numpy as np

    u, v = np.atleast_2d(np.asarray(cached, dtype=np.float64)), np.atleast_2d(np.asarray(new, dtype=np.float64))
    return np.hstack([np.abs(u - v), u * v])


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
