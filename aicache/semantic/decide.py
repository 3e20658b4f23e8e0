"""The hit decision: may the answer cached for a similar question be served for this one?

The semantic tier finds candidates by cosine similarity (at least ``floor``), then asks a ``Decision`` about each.
Three decisions exist, behind one interface so that the tier, ``aicache eval`` and ``learn`` treat them alike:

* ``model`` (the default): a trained pair model scores (new question, cached question) as the probability that
  the cached answer is right; it is served at ``threshold`` or above, a threshold calibrated on held-out topics
  so that the upper bound on wrong answers stays within a budget. In front of it, the verifier's *exact* rules
  (different numbers, versions, identifiers) veto: they cannot be fooled by a one-character difference.
  A candidate stored with its answer's vector is judged by the model that also reads the cached answer, at its
  own calibrated threshold; one stored without (before answers had vectors) by the model that reads the
  questions alone (``AnswerAwareDecision``).
* ``rules``: the earlier hand-written verifier (word lists); kept for comparison and as an explicit choice.
* ``cosine``: similarity alone; only ``aicache eval`` uses it, as the baseline.

Every judgement explains itself: its score and the threshold, and any rule that fired. A refusal close below the
threshold (``judge.gray_zone``) with no rule against it is the *gray zone*, where an LLM judge may decide
(``judge.py``).

Settings: ``decision.kind`` (model | rules), ``decision.threshold`` (the operating point, for the model version
named in ``decision.model``; a threshold learned for another version is ignored, because scores of two versions
are not comparable), ``decision.answer_threshold`` (the answer model's, for the version in
``decision.answer_model``), ``cache.threshold`` (the cosine floor).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from aicache.errors import ConfigError

if TYPE_CHECKING:
    from aicache.config import Settings

KINDS = ("model", "rules")
DEFAULT_KIND = "model"
GRAY_ZONE = 0.45  # how far below the threshold a clean refusal goes to the LLM judge (``judge.gray_zone``)
Answers = Sequence[Any] | None  # per candidate: its cached answer's unit vector, or None


@dataclass(frozen=True)
class Judgement:
    """One candidate judged: served or not, why, and the score the threshold was compared with."""

    accepted: bool
    score: float
    reasons: tuple[str, ...]
    gray_zone: bool = False
    threshold: float | None = None  # of the model that judged it, when it is not the decision's own


class Decision(Protocol):
    @property
    def name(self) -> str:
        """Recorded with each episode: which decision (and model version) judged it."""
        ...

    @property
    def threshold(self) -> float:
        """The operating point, on this decision's own score."""
        ...

    @property
    def floor(self) -> float:
        """The cosine similarity a candidate needs before it is judged at all."""
        ...

    def judge(
        self, question: str, candidates: Sequence[tuple[str, float]], vectors: Any = None, answers: Answers = None
    ) -> list[Judgement]:
        """Judge each (cached question, cosine similarity), in the order given. ``vectors``, when the caller
        has them: the question's unit vector (row 0) and each candidate's (rows 1..), so that a model that needs
        them does not embed the texts again. ``answers``: each candidate's cached answer's unit vector, or None
        for one stored without (a decision that does not read answers ignores them)."""
        ...

    def at(self, threshold: float) -> Decision:
        """The same decision at another operating point (for sweeps and calibration)."""
        ...


@dataclass(frozen=True)
class CosineDecision:
    """Similarity alone: the baseline every other decision is measured against."""

    threshold: float
    name: str = "cosine"

    @property
    def floor(self) -> float:
        return self.threshold

    def judge(
        self, question: str, candidates: Sequence[tuple[str, float]], vectors: Any = None, answers: Answers = None
    ) -> list[Judgement]:
        return [
            Judgement(s >= self.threshold, s, () if s >= self.threshold else (_below("similarity", s, self.threshold),))
            for _, s in candidates
        ]

    def at(self, threshold: float) -> CosineDecision:
        return replace(self, threshold=threshold)


@dataclass(frozen=True)
class RulesDecision:
    """The hand-written verifier (``verify.py``): word-list rules, then a higher bar for reworded pairs."""

    threshold: float
    name: str = "rules"

    @property
    def floor(self) -> float:
        return self.threshold

    def judge(
        self, question: str, candidates: Sequence[tuple[str, float]], vectors: Any = None, answers: Answers = None
    ) -> list[Judgement]:
        from aicache.semantic import verify

        judged = []
        for cached, similarity in candidates:
            verdict = verify.verify(question, cached, similarity, threshold=self.threshold)
            judged.append(Judgement(verdict.accepted, similarity, verdict.reasons, verdict.gray_zone))
        return judged

    def at(self, threshold: float) -> RulesDecision:
        return replace(self, threshold=threshold)


Scorer = Callable[..., list[float]]  # (question, cached, cosines, vectors, answers): decision.FeatureModel.score


@dataclass(frozen=True)
class ModelDecision:
    """A trained pair model's probability, behind the exact rules' vetoes."""

    threshold: float
    floor: float
    version: str
    scorer: Scorer
    vetoes: bool = True
    gray_zone: float = GRAY_ZONE

    @property
    def name(self) -> str:
        return f"model:{self.version}"

    def judge(
        self, question: str, candidates: Sequence[tuple[str, float]], vectors: Any = None, answers: Answers = None
    ) -> list[Judgement]:
        from aicache.semantic import verify

        # Below the floor a candidate is never judged: the index's exact scan returns the nearest entries however
        # far, and the model's score means nothing on pairs so unlike the ones it was calibrated on.
        above = [i for i, (_, s) in enumerate(candidates) if s >= self.floor]
        rows = None if vectors is None else vectors[[0, *(i + 1 for i in above)]]
        texts, similarities = [candidates[i][0] for i in above], [candidates[i][1] for i in above]
        answered = None if answers is None else [answers[i] for i in above]
        scores = iter(self.scorer(question, texts, similarities, rows, answered) if above else ())
        judged = []
        for cached, similarity in candidates:
            if similarity < self.floor:
                judged.append(Judgement(False, 0.0, (f"similarity {similarity:.2f} below the floor {self.floor:.2f}",)))
                continue
            score = next(scores)
            vetoed = tuple(verify.exact_differences(question, cached)) if self.vetoes else ()
            if vetoed:
                judged.append(Judgement(False, score, vetoed))
            elif score >= self.threshold:
                judged.append(Judgement(True, score, ()))
            else:
                gray = score >= self.threshold - self.gray_zone
                objections = tuple(verify.differences(question, cached))  # what the model weighed against it
                judged.append(Judgement(False, score, (_below("score", score, self.threshold), *objections), gray))
        return judged

    def at(self, threshold: float) -> ModelDecision:
        return replace(self, threshold=threshold)


@dataclass(frozen=True)
class AnswerAwareDecision:
    """Two trained models behind the same vetoes: ``answers`` also reads the cached answer and judges the
    candidates stored with their answer's vector; ``questions`` reads the two questions alone and judges the
    others. Each is served at its own calibrated threshold, and each judgement records it."""

    questions: ModelDecision
    answers: ModelDecision

    @property
    def name(self) -> str:
        return f"{self.questions.name}+answer:{self.answers.version}"

    @property
    def threshold(self) -> float:
        return self.questions.threshold

    @property
    def floor(self) -> float:
        return self.questions.floor

    def judge(
        self, question: str, candidates: Sequence[tuple[str, float]], vectors: Any = None, answers: Answers = None
    ) -> list[Judgement]:
        has = [answers is not None and answers[i] is not None for i in range(len(candidates))]
        judged: list[Judgement | None] = [None] * len(candidates)
        for model, wanted in ((self.answers, True), (self.questions, False)):
            chosen = [i for i, flag in enumerate(has) if flag is wanted]
            if not chosen:
                continue
            rows = None if vectors is None else vectors[[0, *(i + 1 for i in chosen)]]
            given = [answers[i] for i in chosen] if wanted and answers is not None else None
            verdicts = model.judge(question, [candidates[i] for i in chosen], rows, given)
            for i, verdict in zip(chosen, verdicts, strict=True):
                judged[i] = replace(verdict, threshold=model.threshold)
        return [j for j in judged if j is not None]

    def at(self, threshold: float) -> AnswerAwareDecision:
        return replace(self, questions=self.questions.at(threshold), answers=self.answers.at(threshold))


def answer_reader(decision: Decision) -> ModelDecision | None:
    """The decision's model that reads the cached answer, when it has one."""
    return decision.answers if isinstance(decision, AnswerAwareDecision) else None


def _below(what: str, value: float, threshold: float) -> str:
    return f"{what} {value:.2f} below threshold {threshold:.2f}"


def load(settings: Settings, template: str | None = None) -> Decision:
    """The decision the settings ask for (``decision.kind``), at its configured or calibrated operating point
    (``decision.templates.<template>.threshold`` first, when ``learn`` found one for the request's template)."""
    kind = str(settings.get("decision.kind", DEFAULT_KIND))
    floor = settings.get("cache.threshold")
    if kind == "rules":
        from aicache.semantic import verify

        return RulesDecision(float(floor) if floor is not None else verify.DEFAULT_THRESHOLD)
    if kind != "model":
        raise ConfigError(f"decision.kind must be one of {', '.join(KINDS)}, not {kind!r}")
    from aicache.semantic import decision

    model = decision.load(settings)
    questions = ModelDecision(
        threshold=_threshold_for(settings, model.version, model.threshold, template),
        floor=float(floor) if floor is not None else model.floor,
        version=model.version,
        scorer=model.score,
        gray_zone=float(settings.get("judge.gray_zone", GRAY_ZONE)),
    )
    reader = decision.load_answer_model(settings)
    if reader is None:
        return questions
    threshold = _answer_threshold(settings, reader.version, reader.threshold, template)
    answers = replace(questions, threshold=threshold, version=reader.version, scorer=reader.score)
    return AnswerAwareDecision(questions, answers)


def _answer_threshold(settings: Settings, version: str, calibrated: float, template: str | None) -> float:
    """The answer model's: ``decision.answer_threshold`` when ``learn`` fitted it for this version or it was set by
    hand (``decision.answer_model`` unset); else ``decision.threshold`` set by hand for no model in particular
    (``decision.model`` unset), which applies to both models; else its shipped calibration."""
    own = settings.get("decision.answer_threshold")
    made_for = settings.get("decision.answer_model")
    if own is not None and (made_for is None or str(made_for) == version):
        return float(own)
    return _threshold_for(settings, version, calibrated, template)


def _threshold_for(settings: Settings, version: str, calibrated: float, template: str | None) -> float:
    """``decision.threshold`` (or the template's) when set for this model version; the shipped calibration
    otherwise."""
    made_for = settings.get("decision.model")
    if made_for is not None and str(made_for) != version:
        return calibrated  # learned for another model: its scores mean something else
    by_template = settings.get(f"decision.templates.{template}.threshold") if template else None
    configured = by_template if by_template is not None else settings.get("decision.threshold")
    return calibrated if configured is None else float(configured)
