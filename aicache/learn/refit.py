"""Refit the decision model's weights on the user's own labels, mixed with the shipped training rows.

The feature model's trainable part is a logistic regression (a weight per input of its basis and a bias, in
``decision.toml``; ``aicache/semantic/features.py``). ``refit`` fits it again on two kinds of rows:

* the shipped rows (``rows.npz``, written by ``make model``: a sample of the train split), so the model keeps
  what it knew about questions this user never asked (it does not forget);
* the labelled pairs of the older part of the user's data, given ``USER_SHARE`` of the total weight: enough to
  move the weights toward this user's questions whatever their number.

It passes the same gates as a threshold (``calibrate``), and one more:

1. its threshold is fitted on scores it did not train on: out-of-fold scores of the older part (each fold's
   model trained without that fold's topics), bounded within ``max_wrong``;
2. on the shipped calibration topics (``rows.npz`` holds them too) the bound must stay within the budget as
   well, for each kind of near-miss as ``make model`` bounds it: the user's questions are not bought with
   everyone else's;
3. the newer part tests it against what would run without it (today's decision, or the threshold ``calibrate``
   proposes); it is proposed only when it serves more there at the bound.

The result is a new ``decision.toml`` (a new version: scores of two versions are not comparable) that the
proposal carries beside ``learned.toml``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicache import stats
from aicache.learn import calibrate
from aicache.learn.labelled import LabelledPair, topic_of
from aicache.semantic.decision import DATA_DIR, features_toml, features_version
from aicache.semantic.features import FEATURES, Weights, pair_features, sigmoid

if TYPE_CHECKING:
    import numpy as np

    from aicache.semantic.decision import DecisionConfig

USER_SHARE = 0.3  # of the total sample weight; the shipped rows keep the rest
FOLDS = 5  # out-of-fold scores for the threshold
L2 = 1.0  # the penalty `make model` fits with (scikit-learn's C = 1)
ROWS_FILE = "rows.npz"
ARTEFACT_DIR = "decision"  # inside the settings folder: the proposal's decision.toml goes here
ORIGIN = "The semantic hit decision refitted by `aicache learn` on your labels mixed with the shipped rows."


@dataclass(frozen=True)
class Refit:
    """What refitting found: the new model's outcome on the newer part and on the shipped calibration topics."""

    base: str  # the version refitted from
    baseline: calibrate.Outcome  # the newer part, with what would run without the refit
    accepted: bool
    why: str
    user_rows: int = 0
    shipped_rows: int = 0
    version: str | None = None
    threshold: float | None = None
    after: calibrate.Outcome | None = None
    shipped_before: calibrate.Outcome | None = None  # the shipped calibration topics, today's model
    shipped_after: calibrate.Outcome | None = None
    artefact: bytes | None = None  # the new decision.toml

    def to_json(self) -> dict[str, Any]:
        shown = lambda o: None if o is None else o.to_json()  # noqa: E731
        return {
            "base": self.base,
            "version": self.version,
            "threshold": None if self.threshold is None else round(self.threshold, 4),
            "user_rows": self.user_rows,
            "shipped_rows": self.shipped_rows,
            "user_share": USER_SHARE,
            "newer_before": self.baseline.to_json(),
            "newer_after": shown(self.after),
            "shipped_calibration_before": shown(self.shipped_before),
            "shipped_calibration_after": shown(self.shipped_after),
            "accepted": self.accepted,
            "why": self.why,
        }


def refit(
    older: Sequence[LabelledPair],
    newer: Sequence[LabelledPair],
    config: DecisionConfig,
    baseline: calibrate.Outcome,
    max_wrong: float,
    embedder_id: str | None = None,
) -> Refit:
    """Refit on ``older`` (+ the shipped rows), test on ``newer`` against ``baseline``, and decide.
    ``embedder_id``: the embedding model the pairs' vectors come from; the directions are weighed only if the
    model's were fitted on it, as at run time (``decision.FeatureModel``)."""
    kept = Refit(base=config.version, baseline=baseline, accepted=False, why="")
    shipped = _shipped_rows(config.directory)
    if shipped is None:
        return replace(kept, why="this model ships no rows to refit with")
    weights = Weights.of(config.weights)
    fitted_on = {part.embedder for part in (weights.directions, weights.interaction) if part is not None}
    if fitted_on and embedder_id is not None and embedder_id not in fitted_on:
        shipped, older, newer = shipped.without_directions(), _unweighed(older), _unweighed(newer)
    fit_part = [p for p in older if _scored(p, config.floor)]
    kept = replace(kept, user_rows=len(fit_part), shipped_rows=len(shipped.train_y))
    # as for a threshold: wrong pairs the model never judges (under the floor, vetoed) count as refused
    need, have = calibrate.minimum_wrong_pairs(max_wrong), sum(not p.good for p in older)
    if have < need or len({topic_of(p) for p in fit_part}) < FOLDS:
        why = f"not enough data: refitting needs at least {need} wrong-answer labels, and the older part has {have}"
        return replace(kept, why=why)
    model, out_of_fold = _fit_user(config, shipped, fit_part)
    wrong_newer = sum(not p.good for p in newer)
    user_threshold = stats.most_permissive(out_of_fold, have, max_wrong, check_size=wrong_newer)
    shipped_threshold = shipped.threshold(model, config.floor, max_wrong)
    if user_threshold is None or shipped_threshold is None:
        return replace(kept, why="no threshold of the refitted model keeps wrong answers within the bound")
    threshold = math.ceil(max(user_threshold, shipped_threshold, 0.0) * 1e6) / 1e6  # never below a near-miss
    newer_scores = model.scores(_rows(newer), _directions(newer, model))
    rescored = [replace(p, score=float(s)) for p, s in zip(newer, newer_scores, strict=True)]
    after = calibrate.outcome(rescored, threshold, config.floor)
    accepted, why = calibrate.verdict(baseline, after, max_wrong)
    version = features_version(model.to_toml())
    return replace(
        kept,
        accepted=accepted,
        why=why,
        version=version,
        threshold=threshold,
        after=after,
        shipped_before=shipped.outcome(Weights.of(config.weights), config.floor, config.threshold),
        shipped_after=shipped.outcome(model, config.floor, threshold),
        artefact=_artefact(config, model, version, threshold, after, kept.user_rows, kept.shipped_rows),
    )


@dataclass(frozen=True)
class Shipped:
    """``rows.npz``: features, labels and training weights of shipped train rows, and the calibration topics'."""

    train_x: np.ndarray
    train_y: np.ndarray
    train_w: np.ndarray  # what each row weighed in `make model`'s fit (ones in files that do not say)
    calibration_x: np.ndarray
    calibration_y: np.ndarray
    calibration_kind: np.ndarray  # each near-miss's kind (training/calibrate.near_miss_kind); one kind if unsaid
    # the fixed part of each row's logit (the directions' and the interaction head's: ``Weights.direction_logits``
    # + ``Weights.interaction_logits``; zeros for a model without): the refit keeps that part of the model as it
    # is and refits the rest around it
    train_d: np.ndarray
    calibration_d: np.ndarray

    @property
    def wrong_pairs(self) -> int:
        return int((self.calibration_y == 0).sum())

    def without_directions(self) -> Shipped:
        """The rows as a runtime that weighs neither directions nor the interaction head scores them (another
        embedding model's vectors and tokens)."""
        import numpy as np

        return replace(self, train_d=np.zeros(len(self.train_d)), calibration_d=np.zeros(len(self.calibration_d)))

    def _eligible(self, floor: float) -> np.ndarray:
        return self.calibration_x[:, 0] >= floor  # column 0 is the cosine: the floor applies as in training

    def threshold(self, model: Weights, floor: float, max_wrong: float) -> float | None:
        """The lowest threshold whose bound on the calibration near-misses stays within ``max_wrong`` for every
        kind of near-miss; None when one kind cannot be kept within it."""
        import numpy as np

        scores, eligible = model.scores(self.calibration_x, self.calibration_d), self._eligible(floor)
        wrong = self.calibration_y == 0
        of_kind = [wrong & (self.calibration_kind == kind) for kind in np.unique(self.calibration_kind[wrong])]
        groups = [([float(s) for s in scores[mask & eligible]], int(mask.sum())) for mask in of_kind]
        return stats.most_permissive_for_each(groups, max_wrong)

    def outcome(self, model: Weights, floor: float, threshold: float) -> calibrate.Outcome:
        served = self._eligible(floor) & (model.scores(self.calibration_x, self.calibration_d) >= threshold)
        right = self.calibration_y == 1
        return calibrate.Outcome(
            threshold, int((served & right).sum()), int(right.sum()), int((served & ~right).sum()), self.wrong_pairs
        )


def _fit_user(config: DecisionConfig, shipped: Shipped, pairs: Sequence[LabelledPair]) -> tuple[Weights, list[float]]:
    """The model fitted on every pair, and the out-of-fold scores of the wrong pairs (each fold's model trained
    without that fold's topics): what the threshold is fitted on."""
    import numpy as np

    current = Weights.of(config.weights)
    x, y = _rows(pairs), np.asarray([p.good for p in pairs], dtype=np.float64)
    d = _directions(pairs, current)
    folds = np.asarray([int(topic_of(p)[:8], 16) % FOLDS for p in pairs])
    out_of_fold: list[float] = []
    for fold in range(FOLDS):
        held, fit = (folds == fold) & (y == 0), folds != fold
        model = _fit(current, shipped, x[fit], y[fit], d[fit])
        out_of_fold.extend(float(s) for s in model.scores(x[held], d[held]))
    return _fit(current, shipped, x, y, d), out_of_fold


def _scored(pair: LabelledPair, floor: float) -> bool:
    """Pairs the model would judge at all: above the cosine floor and not vetoed by an exact rule."""
    return pair.similarity >= floor and not pair.vetoed


def _shipped_rows(directory: Path) -> Shipped | None:
    """The rows of the model's own directory (a ``make model --out`` one), else those the package ships."""
    import numpy as np

    for path in (directory / ROWS_FILE, DATA_DIR / ROWS_FILE):
        if path.is_file():
            with np.load(path) as rows:
                weights = rows["train_w"] if "train_w" in rows.files else np.ones(len(rows["train_y"]))
                calibration_y = rows["calibration_y"].astype(np.float64)
                one_kind = np.full(len(calibration_y), "")
                kinds = rows["calibration_kind"] if "calibration_kind" in rows.files else one_kind
                return Shipped(
                    rows["train_x"].astype(np.float64),
                    rows["train_y"].astype(np.float64),
                    weights.astype(np.float64),
                    rows["calibration_x"].astype(np.float64),
                    calibration_y,
                    kinds,
                    # files of models that weigh no directions have no directions' part: zeros
                    rows["train_d"].astype(np.float64) if "train_d" in rows.files else np.zeros(len(weights)),
                    rows["calibration_d"].astype(np.float64)
                    if "calibration_d" in rows.files
                    else np.zeros(len(calibration_y)),
                )
    return None


def _rows(pairs: Sequence[LabelledPair]) -> np.ndarray:
    import numpy as np

    rows = [pair_features(p.cached, p.question, p.similarity) for p in pairs]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURES))


def _unweighed(pairs: Sequence[LabelledPair]) -> list[LabelledPair]:
    return [replace(p, vectors=None, head_logit=None) for p in pairs]


def _directions(pairs: Sequence[LabelledPair], model: Weights) -> np.ndarray:
    """The fixed part of each pair's logit under ``model``: the directions' and the interaction head's (zeros for
    a model that weighs neither, and for pairs without vectors: another embedding model's, which the runtime
    does not weigh either)."""
    import numpy as np

    fixed = np.zeros(len(pairs))
    if model.directions is not None and pairs and all(p.vectors is not None for p in pairs):
        both = np.stack([p.vectors for p in pairs])  # (question, cached) per pair, from ``labelled.score``
        fixed += model.direction_logits(both[:, 1], both[:, 0])
    if model.interaction is not None and pairs and all(p.head_logit is not None for p in pairs):
        fixed += model.interaction_logits([p.head_logit for p in pairs], [p.similarity for p in pairs])
    return fixed


def _fit(start: Weights, shipped: Shipped, user_x: np.ndarray, user_y: np.ndarray, user_d: np.ndarray) -> Weights:
    """The weighted logistic regression on both kinds of rows, with ``start``'s standardisation; the directions'
    part of the logit (if the model has one) stays as it is, an offset the rest is fitted around."""
    import numpy as np

    ship_x, ship_y = shipped.train_x, shipped.train_y
    user_weight = USER_SHARE / (1 - USER_SHARE) * float(shipped.train_w.sum()) / max(len(user_y), 1)
    x = start.inputs(np.vstack([ship_x, user_x]))
    x = np.hstack([x, np.ones((len(x), 1))])
    y = np.concatenate([ship_y, user_y])
    weight = np.concatenate([shipped.train_w, np.full(len(user_y), user_weight)])
    coef = _newton(x, y, weight, np.concatenate([shipped.train_d, user_d]))
    return replace(start, coef=coef[:-1], bias=float(coef[-1]))


def _newton(x: np.ndarray, y: np.ndarray, weight: np.ndarray, offset: np.ndarray, steps: int = 100) -> np.ndarray:
    """Minimise the weighted log loss of ``x @ w + offset`` plus L2 / 2 * |coef|^2 (not on the bias) by Newton's
    method with step halving: the problem is convex, a few dozen features converge in a handful of steps, with
    numpy alone."""
    import numpy as np

    penalty = np.full(x.shape[1], L2)
    penalty[-1] = 0.0

    def loss(w: np.ndarray) -> float:
        logits = x @ w + offset
        return float(weight @ (np.logaddexp(0.0, logits) - y * logits) + 0.5 * penalty @ (w * w))

    w = np.zeros(x.shape[1])
    current = loss(w)
    for _ in range(steps):
        p = sigmoid(x @ w + offset)
        gradient = x.T @ (weight * (p - y)) + penalty * w
        hessian = (x * (weight * p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while size > 1e-6 and loss(w - size * step) > current:
            size /= 2
        w = w - size * step
        current = loss(w)
        if float(np.abs(size * step).max()) < 1e-10:
            break
    return w


def _artefact(
    config: DecisionConfig,
    model: Weights,
    version: str,
    threshold: float,
    after: calibrate.Outcome,
    user_rows: int,
    shipped_rows: int,
) -> bytes:
    calibration = {
        "split": "the newer part of your labels (by time); the threshold was fitted on the older part",
        "user_rows": user_rows,
        "shipped_rows": shipped_rows,
        "user_share": USER_SHARE,
        "near_misses": after.wrong_pairs,
        "near_misses_served": after.wrong,
        "wrong_upper_bound": round(after.wrong_bound, 5),
        "paraphrases": after.right,
        "paraphrases_served": after.served,
    }
    text = features_toml(version, threshold, config.floor, model.to_toml(), calibration, ORIGIN, base=config.version)
    return text.encode("utf-8")
