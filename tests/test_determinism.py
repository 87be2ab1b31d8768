"""Same config, seed and thread count on the CPU: the same model, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import compose_cfg, make_sentences, write_conll
from safetensors.torch import load_file

from nerlab.models.bilstm_crf import build_tagger


def _big_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch the size of real training batches (64 sentences of up to 48 tokens, 900 distinct
    forms), large enough for PyTorch's CPU kernels to split their work across threads."""
    rng = np.random.default_rng(seed)
    batch, length, forms, width = 64, 48, 900, 12
    lengths = rng.integers(5, length + 1, batch)
    mask = np.arange(length)[None, :] < lengths[:, None]
    return {
        "word_ids": torch.from_numpy(np.where(mask, rng.integers(2, 500, mask.shape), 0)),
        "form_index": torch.from_numpy(np.where(mask, rng.integers(0, forms, mask.shape), 0)),
        "char_ids": torch.from_numpy(rng.integers(1, 60, (forms, width))),
        "char_lengths": torch.from_numpy(rng.integers(1, width + 1, forms)),
        "casing": torch.zeros(mask.shape, dtype=torch.long),
        "mask": torch.from_numpy(mask),
        "tags": torch.from_numpy(np.where(mask, rng.integers(0, 9, mask.shape), 0)),
    }


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="needs two threads to show")
def test_gradients_are_the_same_on_every_backward_pass():
    torch.manual_seed(0)
    tags = ["O", *(f"{p}-{t}" for t in ("LOC", "MISC", "ORG", "PER") for p in "BI")]
    net = build_tagger({"num_words": 500, "num_chars": 60}, tags, "bio").eval()
    batch = _big_batch()

    def gradients() -> dict[str, torch.Tensor]:
        net.zero_grad()
        net.loss(net(batch), batch["tags"], batch["mask"]).backward()
        return {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}

    first = gradients()
    for _ in range(5):
        again = gradients()
        assert [k for k in first if not torch.equal(first[k], again[k])] == []


def test_training_twice_gives_the_same_weights_and_scores(tmp_path):
    from nerlab.training.run import train

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    long = [(t * 4, g * 4) for t, g in make_sentences(400, seed=5)]  # sentences of 8-40 tokens
    write_conll(corpus / "train.txt", long)
    write_conll(corpus / "valid.txt", make_sentences(40, seed=6))
    write_conll(corpus / "test.txt", make_sentences(40, seed=7))
    runs = []
    for i in range(2):
        cfg = compose_cfg(
            tmp_path / str(i),
            corpus,
            "trainer.max_epochs=2",
            "logger=csv",
            "data.batch_size=64",
            "model.char_features_dims=50",
            "model.entity_tagger_lstm_dims=64",
        )
        summary = train(cfg)
        runs.append((summary, load_file(f"{summary['model_dir']}/model.safetensors")))
    (first, weights), (second, again) = runs
    assert first["val_f1"] == second["val_f1"] and first["test_f1"] == second["test_f1"]
    assert weights.keys() == again.keys()
    assert [k for k in weights if not torch.equal(weights[k], again[k])] == []
