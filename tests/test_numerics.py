"""No subnormal arithmetic in training: flush-to-zero in every thread, and an optimizer state
free of subnormal floats after real epochs; the progress bar redraws by time."""

from __future__ import annotations

import subprocess
import sys

import torch
from conftest import compose_cfg, make_sentences, write_conll

from nerlab.training.numerics import count_subnormal

PROBE = "from nerlab.training.numerics import subnormal_results as s; print(s())"


def _probe(prelude: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", f"import torch; torch.set_num_threads(2); {prelude}{PROBE}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


def test_worker_threads_inherit_flush_to_zero():
    assert _probe("") > 0  # without it, torch's threads compute subnormals (the probe works)
    assert _probe("from nerlab.training.numerics import flush_denormals; flush_denormals(); ") == 0


def test_count_subnormal():
    # built from bits: with flush-to-zero already set in this process (by a training test),
    # a literal 1e-39 would be read as 0
    bits = torch.tensor([0, 1, 0x007FFFFF, 0x80000010, 0x00800000, 0x3F800000, 0x7F800000])
    values = bits.to(torch.int32).view(torch.float32)  # 0, 3 subnormals, 1.2e-38, 1, inf
    assert count_subnormal(values) == 3
    assert count_subnormal(torch.tensor([1, 2], dtype=torch.int64).view(torch.float64)) == 2


def test_training_leaves_no_subnormal_optimizer_state(tmp_path):
    """Dense embedding gradients and beta1 = beta2 = 0.001: a row's moments shrink a
    thousandfold every step no batch touches it, so a word seen once an epoch passes through
    float32's subnormal range about 12 steps later. After real epochs no moment may be
    subnormal (they are flushed to exactly 0)."""
    from nerlab.training.run import train

    corpus = tmp_path / "rare"
    corpus.mkdir()
    rare = [f"Zq{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(120)]  # no digits
    pairs = zip(rare, make_sentences(120, 1), strict=True)
    sentences = [(t + [w], g + ["O"]) for w, (t, g) in pairs]
    write_conll(corpus / "train.txt", sentences)
    write_conll(corpus / "valid.txt", make_sentences(20, seed=2))
    write_conll(corpus / "test.txt", make_sentences(20, seed=3))
    cfg = compose_cfg(
        tmp_path,
        corpus,
        "trainer.max_epochs=3",
        "+optimizer.sparse_rows=false",
        "+optimizer.betas=[0.001,0.001]",
        "data.singleton_unk_prob=0",
        "logger.mlflow.log_model=false",
    )
    train(cfg)
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    states = checkpoint["optimizer_states"][0]["state"].values()
    moments = [s[k] for s in states for k in ("exp_avg", "exp_avg_sq")]
    assert sum(count_subnormal(m) for m in moments) == 0
    # the embedding's first moment: entries of words not seen for a while are exactly 0
    exp_avg = max((s["exp_avg"] for s in states), key=lambda t: t.shape[0])
    flushed = int(exp_avg[2:].eq(0).sum())  # rows 0 and 1 (padding, unknown) never move
    assert exp_avg.shape[0] > 120 and flushed > 10 * exp_avg.shape[1], flushed


def test_the_default_optimizer_updates_embedding_rows(tmp_path, tiny_corpus):
    """FusedNAdam (sparse_rows) gets the embedding's gradient as rows; the run trains."""
    from nerlab.training.run import build_data_and_model

    cfg = compose_cfg(tmp_path, tiny_corpus)
    datamodule, module, _ = build_data_and_model(cfg)
    configured = module.configure_optimizers()  # with the default's cosine schedule: a dict
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    assert module.net.words.embedding.sparse and optimizer.sparse_rows
    batch = next(iter(datamodule.train_dataloader()))
    module.net.loss(module.net(batch), batch["tags"], batch["mask"]).backward()
    grad = module.net.words.embedding.weight.grad
    assert grad.is_sparse
    touched = set(grad.coalesce()._indices()[0].tolist())
    assert touched == set(batch["word_ids"][batch["mask"]].tolist()) - {0}


def test_progress_bar_redraws_by_time(monkeypatch):
    from nerlab.training import progress

    clock = iter([0.0, 0.1, 0.2, 0.6, 0.7, 1.2, 1.3])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    bar = progress.TimedProgressBar(refresh_seconds=0.5)
    assert [bar._should_update(n, 100) for n in range(1, 7)] == [
        True, False, False, True, False, True,
    ]  # fmt: skip
    assert bar._should_update(100, 100)  # the end of the loop is always drawn
