"""Ways to embed faster, measured: throughput and agreement with sentence-transformers on the same questions.

Usage: python benchmarks/bench_embedding_options.py [--sample 2000] [--runs 3]

Bulk insert (issue 3: >= 300 entries/s including embedding) is bound by the model's compute, so this script
measures what else could run it, on the questions ``bench_scale.py`` embeds, in chunks of 256 as a bulk insert
does, each option through aicache's own bulk path (unpadded batches, one per core):

* **shipped**: the ONNX export aicache uses (onnxruntime's EXTENDED graph optimizations, saved once);
* **transformer fusions**: the same graph through ``onnxruntime.transformers.optimizer`` (fused Attention,
  SkipLayerNormalization, EmbedLayerNormalization), the usual recipe for BERT-like models on CPU;
* **int8, every MatMul** and **int8, FFN input only**: dynamic quantization (per channel, reduced range, the
  accurate setting for AVX2 CPUs without VNNI), of all matrix products or only the largest one per layer;
* **sentence-transformers** itself (torch, MKL), the reference every option is compared with.

For each: entries/s (median of --runs) and the cosine of its vectors with sentence-transformers' (worst and
mean over the sample). aicache requires >= 0.999 on every sentence (its own export check uses 0.9999).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_scale import question

from aicache import config
from aicache.semantic import embeddings

CHUNK = 256  # texts per encode() call, as bench_scale.py's bulk insert and `aicache reindex` send them


def rate(encode: Callable[[list[str]], object], texts: list[str], runs: int) -> float:
    encode(texts[:CHUNK])  # warm up: the bulk session and thread pool are made on first use
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        for start in range(0, len(texts), CHUNK):
            encode(texts[start : start + CHUNK])
        rates.append(len(texts) / (time.perf_counter() - started))
    return statistics.median(rates)


def fused(raw: Path, target: Path) -> None:
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(str(raw), model_type="bert", opt_level=0)
    model.save_model_to_file(str(target))


def int8(only: str | None) -> Callable[[Path, Path], None]:
    def quantize(raw: Path, target: Path) -> None:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        nodes = [n.name for n in onnx.load(str(raw)).graph.node if n.op_type == "MatMul"]
        quantize_dynamic(
            str(raw),
            str(target),
            per_channel=True,
            reduce_range=True,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=[n for n in nodes if only is None or only in n],
            extra_options={"DefaultTensorType": 1},  # FLOAT, for outputs shape inference cannot type
        )

    return quantize


VARIANTS: dict[str, Callable[[Path, Path], None] | None] = {
    "shipped (ONNX, onnxruntime EXTENDED)": None,
    "transformer fusions": fused,
    "int8, every MatMul": int8(None),
    "int8, FFN input only": int8("intermediate"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the quantizer logs advice on every call
    import numpy as np

    texts = [question(int(i)) for i in np.random.default_rng(1).permutation(100_000)[: args.sample]]
    spec = embeddings.model_spec(config.load())
    with embeddings.quiet():
        st_model = embeddings.load_sentence_transformer(spec, model_kwargs={"attn_implementation": "eager"})

    def st_encode(batch: list[str]) -> object:
        return st_model.encode(batch, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)

    reference = np.asarray(st_encode(texts), dtype=np.float32)
    print(f"{args.sample:,} questions ({CHUNK} per call), median of {args.runs} runs:")
    with tempfile.TemporaryDirectory(prefix="aicache-bench-embed-") as scratch:
        raw = Path(scratch) / "raw.onnx"
        with embeddings.quiet():
            embeddings.export_raw(st_model, raw)
        for number, (name, transform) in enumerate(VARIANTS.items()):
            source = raw
            if transform is not None:
                source = Path(scratch) / "variant.onnx"
                with embeddings.quiet():
                    transform(raw, source)
            target = Path(scratch) / f"optimized-{number}.onnx"
            embeddings.save_optimized(source, target)
            embedder = embeddings.OnnxEmbedder(spec, target)
            cosines = (embedder.encode(texts) * reference).sum(axis=1)
            print(
                f"  {name:38} {rate(embedder.encode, texts, args.runs):5.0f} entries/s; "
                f"cosine with sentence-transformers: worst {cosines.min():.5f}, mean {cosines.mean():.5f}",
                flush=True,
            )
    print(f"  {'sentence-transformers (torch)':38} {rate(st_encode, texts, args.runs):5.0f} entries/s (the reference)")


if __name__ == "__main__":
    main()
