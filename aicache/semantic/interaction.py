"""The interaction head: a small trained model that compares two questions token by token.

Every other input of the feature model is blind to word order: the cosine, the overlaps, the rule verdicts and
the directions of the two pooled embeddings. "Can *I* change the locks without telling *my landlord*" and "can
*my landlord* change the locks without telling *me*" look the same to all of them. The head reads the embedding
model's contextual token embeddings, in which each word is already mixed with its neighbours and its position
(the head itself pools over tokens: order reaches it through them), in the manner of ESIM (Chen et al. 2017):

1. each token of one question is softly aligned to the other question's tokens (scaled dot-product attention);
2. it is compared with what it aligned to, ``[x, x~, x - x~, x * x~]``, through a linear layer and ReLU;
3. the comparisons are pooled per question (mean and max), the two questions combined symmetrically (sum and
   absolute difference), and a linear layer gives one logit.

The embedding model stays frozen; only the head is trained (``training/interaction.py``). ``make model`` trains
two heads on the two halves of the training topics, so that the regression is fitted on logits of pairs each
head never saw; at run time the two logits are averaged, as on the calibration topics. The head's logit is one
more input of the feature model (``features.Interaction``). ``interaction.npz`` holds both heads' weights; this
module runs them with numpy alone.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicache.errors import ConfigError

FILE = "interaction.npz"
UNREADABLE = (OSError, KeyError, ValueError, zipfile.BadZipFile)  # what a damaged or foreign file raises
PARTS = ("compare.weight", "compare.bias", "out.weight", "out.bias")


@dataclass(frozen=True)
class Head:
    """One trained head's weights (the names of the torch module's parameters)."""

    compare_weight: Any  # (hidden, 4 * dim)
    compare_bias: Any
    out_weight: Any  # (1, 4 * hidden)
    out_bias: Any

    def logit(self, a: Any, b: Any) -> float:
        """The logit for two questions' token embeddings (one row per token); symmetric in the two."""
        import numpy as np

        va, vb = self._side(a, b), self._side(b, a)
        return float(np.concatenate([va + vb, np.abs(va - vb)]) @ self.out_weight[0] + self.out_bias[0])

    def _side(self, x: Any, y: Any) -> Any:
        import numpy as np

        attention = (x @ y.T) / np.sqrt(x.shape[1])
        attention = np.exp(attention - attention.max(axis=1, keepdims=True))
        aligned = (attention / attention.sum(axis=1, keepdims=True)) @ y
        compared = np.hstack([x, aligned, x - aligned, x * aligned]) @ self.compare_weight.T + self.compare_bias
        compared = np.maximum(0.0, compared)
        return np.concatenate([compared.mean(axis=0), compared.max(axis=0)])


@dataclass(frozen=True)
class Heads:
    """The heads of ``interaction.npz``; a pair's logit is their mean."""

    heads: tuple[Head, ...]

    @classmethod
    def load(cls, path: Path) -> Heads:
        import numpy as np

        try:
            with np.load(path) as stored:
                count = int(stored["heads"])
                arrays = [
                    [np.asarray(stored[f"head{i}.{part}"], dtype=np.float64) for part in PARTS] for i in range(count)
                ]
        except UNREADABLE as exc:
            raise ConfigError(f"decision model: unreadable {path.name} ({exc})") from None
        return cls(tuple(Head(*parts) for parts in arrays))

    @classmethod
    def find(cls, digest: str, directories: Sequence[Path]) -> Heads:
        """The heads whose file has ``digest``, from the first of ``directories`` that holds them: a model
        refitted by ``learn`` keeps the heads of the model it was refitted from (its own directory has none)."""
        for directory in directories:
            path = directory / FILE
            try:
                if path.is_file() and file_digest(path) == digest:
                    return cls.load(path)
            except UNREADABLE:
                continue  # a damaged file is not the heads asked for; another directory may hold them
        where = " or ".join(str(d) for d in directories)
        raise ConfigError(f"decision model: no {FILE} with digest {digest} in {where}")

    @staticmethod
    def save(path: Path, states: Sequence[dict[str, Any]]) -> str:
        """Write the heads' torch ``state_dict``s (as numpy float32 arrays) to ``path``; return its digest."""
        import numpy as np

        arrays: dict[str, Any] = {"heads": np.asarray(len(states))}
        for i, state in enumerate(states):
            arrays |= {f"head{i}.{part}": np.asarray(state[part], dtype=np.float32) for part in PARTS}
        np.savez(path, **arrays)
        return file_digest(path)

    def logits(self, cached: Sequence[Any], new: Sequence[Any]) -> Any:
        """The mean logit of the heads for each pair (cached question's, new question's token embeddings)."""
        import numpy as np

        rows = [
            sum(head.logit(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)) for head in self.heads)
            / len(self.heads)
            for a, b in zip(cached, new, strict=True)
        ]
        return np.asarray(rows, dtype=np.float64)


def file_digest(path: Path) -> str:
    """The first 16 hex digits of a SHA-256 over the file's arrays (names, shapes, float32 values): the same
    heads give the same digest however the file was written."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    with np.load(path) as stored:
        for name in sorted(stored.files):
            array = np.ascontiguousarray(stored[name], dtype=np.float32)
            digest.update(f"{name}{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()[:16]
