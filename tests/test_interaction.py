"""The interaction head: trained in torch (training/interaction.py), run in numpy (aicache/semantic/interaction.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aicache.errors import ConfigError
from aicache.semantic import features
from aicache.semantic.interaction import FILE, Heads, file_digest
from training import interaction


class TokenStub:
    """An embedder's ``token_embeddings`` without the model: a fixed matrix per text (seeded by the text), so a
    test can compute the head's logit of a pair the way the runtime does and compare."""

    def token_embeddings(self, texts: list[str]) -> list[np.ndarray]:
        import hashlib

        out = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
            rng = np.random.default_rng(seed)
            out.append(rng.normal(scale=0.5, size=(len(text.split()), 384)).astype(np.float32))
        return out


def _tokens(rng: np.random.Generator, lengths: list[int]) -> list[np.ndarray]:
    return [rng.normal(scale=0.5, size=(n, 384)).astype(np.float32) for n in lengths]


def _torch_logits(head: object, a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
    import torch

    with torch.no_grad():
        xa, ma = interaction.padded([torch.from_numpy(m) for m in a])
        xb, mb = interaction.padded([torch.from_numpy(m) for m in b])
        return head(xa, ma, xb, mb).tolist()  # type: ignore[operator]


def test_the_runtime_head_gives_the_trained_heads_logits_in_a_padded_batch_and_alone() -> None:
    import torch

    torch.manual_seed(5)
    head = interaction.build_head()
    rng = np.random.default_rng(5)
    a, b = _tokens(rng, [3, 9, 5]), _tokens(rng, [7, 2, 5])
    trained = _torch_logits(head, a, b)  # one batch: the shorter questions padded, the padding masked
    state = {name: value.detach().numpy() for name, value in head.state_dict().items()}
    runtime = interaction.heads_of([state])
    assert runtime.logits(a, b).tolist() == pytest.approx(trained, abs=1e-4)
    assert [_torch_logits(head, [x], [y])[0] for x, y in zip(a, b, strict=True)] == pytest.approx(trained, abs=1e-4)
    # symmetric: which question is cached does not matter
    assert runtime.logits(b, a).tolist() == pytest.approx(trained, abs=1e-4)
    # the head itself pools over tokens: order reaches it only through the contextual token embeddings, in
    # which the embedding model has already mixed each word with its neighbours and its position
    swapped = [m[::-1].copy() for m in b]
    assert runtime.logits(a, swapped).tolist() == pytest.approx(trained, abs=1e-4)


def test_the_heads_file_is_found_by_its_digest_and_refused_when_it_is_another(tmp_path: Path) -> None:
    import torch

    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        states.append({k: v.detach().numpy() for k, v in interaction.build_head().state_dict().items()})
    model_dir, package_dir = tmp_path / "refitted", tmp_path / "package"
    model_dir.mkdir()
    package_dir.mkdir()
    digest = Heads.save(package_dir / FILE, states)
    assert digest == file_digest(package_dir / FILE)
    # a refitted model's own directory holds no heads: those of the model it was refitted from are found
    found = Heads.find(digest, (model_dir, package_dir))
    rng = np.random.default_rng(1)
    a, b = _tokens(rng, [4]), _tokens(rng, [6])
    assert found.logits(a, b).tolist() == pytest.approx(interaction.heads_of(states).logits(a, b).tolist())
    Heads.save(model_dir / FILE, states[:1])  # other heads under the same name are passed over
    assert Heads.find(digest, (model_dir, package_dir)).logits(a, b).tolist() == pytest.approx(
        found.logits(a, b).tolist()
    )
    with pytest.raises(ConfigError, match=r"no interaction\.npz with digest 0000"):
        Heads.find("0000", (model_dir, package_dir))
    (model_dir / FILE).write_bytes(b"PK\x03\x04 not a zip")  # damaged: passed over, not a crash
    assert Heads.find(digest, (model_dir, package_dir)).logits(a, b).tolist() == pytest.approx(
        found.logits(a, b).tolist()
    )
    with pytest.raises(ConfigError, match=r"unreadable interaction\.npz"):
        Heads.load(model_dir / FILE)


def test_the_heads_part_of_the_logit_is_weighed_and_kept_within_the_range_it_took_in_training() -> None:
    table = {
        "basis": "linear",
        "mean": [0.0] * len(features.FEATURES),
        "scale": [1.0] * len(features.FEATURES),
        "coef": [0.0] * len(features.FEATURES),
        "bias": 0.0,
        "interaction_mean": [0.0, 0.0],
        "interaction_scale": [1.0, 1.0],
        "interaction_coef": [1.0, 0.5],
        "interaction_range": [-3.0, 3.0],
        "interaction_embedder": "m@1",
        "interaction_heads": "abc",
    }
    weights = features.Weights.of(table)
    assert weights.weighs_embeddings and weights.interaction is not None
    assert weights.interaction_logits([1.0, 10.0, -10.0], [0.8, 0.8, 0.8]).tolist() == pytest.approx([1.4, 3.0, -3.0])
    row = [0.8] + [0.0] * (len(features.FEATURES) - 1)
    with pytest.raises(ValueError, match="fixed part"):
        weights.scores([row])  # a model that weighs the head never scores without it
    assert (
        features.Weights.of(weights.to_toml()).to_toml()
        == weights.to_toml()
        == table | {"interaction_range": [-3.0, 3.0]}
    )


def test_a_head_trains_on_a_handful_of_pairs() -> None:
    rng = np.random.default_rng(2)
    texts = [f"t{i}" for i in range(8)]
    tokens = {t: m for t, m in zip(texts, _tokens(rng, [3, 4, 5, 6, 3, 4, 5, 6]), strict=True)}
    rows = [{"a": texts[i], "b": texts[i + 1], "label": i % 2, "role": "q-p"} for i in range(7)]
    head = interaction.train_head(rows, tokens, max_steps=3)
    logits = _torch_logits(head, [tokens[r["a"]] for r in rows], [tokens[r["b"]] for r in rows])
    assert len(logits) == 7 and all(np.isfinite(logits))
