"""Design 2: a small model over cheap features, and the exact vetoes.

Features of a pair (cached ``a``, new ``b``): the cosine similarity of the embeddings, which of the verifier's
rules fired (each rule one feature), whether the verifier accepted, word overlap and length ratio. A logistic
regression over them (standardised), trained on the same train split as the cross-encoder.

The *exact vetoes* are the verifier rules that need no judgement: two different numbers, two different versions
of one named thing, two different identifiers (codes mixing letters and digits). They can sit in front of any
model; ``training/train.py`` measures with and without them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

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
    "different ",  # named things: "different language: ..." (after the specific "different ..." rules)
)
VETO_RULES = ("different numbers", "different versions", "different identifiers")
_WORDS = re.compile(r"[a-z0-9]+")


def _verify_module():  # type: ignore[no-untyped-def]
    from aicache.semantic import verify

    return verify


def rule_reasons(a: str, b: str) -> list[str]:
    """The verifier's reasons for refusing b given cached a (its rules only, no similarity gate)."""
    verify = _verify_module()
    lex = verify.load_lexicon()
    return list(verify.compare(lex.analyse(b), lex.analyse(a), lex))


def vetoed(a: str, b: str) -> bool:
    """An exact rule refuses: different numbers, versions or identifiers."""
    verify = _verify_module()
    lex = verify.load_lexicon()
    query, cached = lex.analyse(b), lex.analyse(a)
    return bool(
        verify._numbers(query, cached)
        or verify._different_versions(query, cached)
        or verify._identifiers(query, cached)
    )


def rule_flags(reasons: Sequence[str]) -> list[float]:
    flags = [0.0] * len(RULES)
    for reason in reasons:
        for i, prefix in enumerate(RULES):
            if reason.startswith(prefix):
                flags[i] = 1.0
                break
    return flags


def features(a: str, b: str, cosine: float) -> list[float]:
    verify = _verify_module()
    reasons = rule_reasons(a, b)
    verdict = verify.verify(b, a, cosine, threshold=0.0)
    wa, wb = set(_WORDS.findall(a.lower())), set(_WORDS.findall(b.lower()))
    jaccard = len(wa & wb) / max(1, len(wa | wb))
    la, lb = max(1, len(a.split())), max(1, len(b.split()))
    return [
        cosine,
        cosine * cosine,
        float(verdict.accepted),
        float(verdict.gray_zone),
        float(not reasons),
        *rule_flags(reasons),
        jaccard,
        min(la, lb) / max(la, lb),
        math.log(la / lb) ** 2,
        float(len(wa ^ wb)),
    ]


class FeatureModel:
    """Standardised logistic regression (sklearn at training time; a dot product to score)."""

    def __init__(self) -> None:
        self.mean: list[float] = []
        self.scale: list[float] = []
        self.coef: list[float] = []
        self.bias = 0.0

    def fit(self, rows: Sequence[Sequence[float]], labels: Sequence[int], seed: int = 0) -> FeatureModel:
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        x = np.asarray(rows, dtype=np.float64)
        self.mean = x.mean(axis=0).tolist()
        self.scale = (x.std(axis=0) + 1e-9).tolist()
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        model = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(z, np.asarray(labels))
        self.coef = model.coef_[0].tolist()
        self.bias = float(model.intercept_[0])
        return self

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        import numpy as np

        z = (np.asarray(rows, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        return (1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.bias)))).tolist()
