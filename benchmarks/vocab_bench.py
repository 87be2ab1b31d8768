"""What a training step costs as the vocabulary grows, with and without row-wise updates::

    python -m benchmarks.vocab_bench --data-dir DIR [--quick] [--json]

The default model on CoNLL-2003's training split, its word embedding widened to ``SIZES``
words (the rows past the corpus's own are never looked up, as for words of a large pretrained
vocabulary that the corpus lacks), trained through a bare ``lightning.Trainer`` (gradient
clipping as configured, no logger or callbacks) for ``STEPS`` batches, once with the default
row-wise updates (``optimizer.sparse_rows=true``: the embedding's gradient holds the rows the
batch looks up, and only those rows are clipped and stepped) and once with dense updates
(``false``: every row, every step). The figure is the time per training token over the batches
after ``WARM_UP``; ``vs_smallest`` is its ratio to the smallest vocabulary's.
"""

from __future__ import annotations

import time

import lightning as L

from benchmarks.peers import child_main, run_child

SIZES = (25_000, 100_000, 400_000)
STEPS, WARM_UP = 160, 30
QUICK_STEPS, QUICK_WARM_UP = 40, 10


class TokenClock(L.Callback):
    """Tokens and seconds of the training batches after the first ``warm_up``."""

    def __init__(self, warm_up: int) -> None:
        self.warm_up = warm_up
        self.tokens = 0
        self.started: float | None = None
        self.ended = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warm_up:
            self.started = time.perf_counter()
        if self.started is not None:
            self.tokens += int(batch["mask"].sum())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ended = time.perf_counter()


def measure_one(cfg, built, words: int, sparse_rows: bool, steps: int, warm_up: int) -> dict:
    from hydra.utils import instantiate

    from nerlab.models.embeddings import WordEmbedding
    from nerlab.training.module import NERModule

    vocabs = built.datamodule.vocabs
    module = NERModule(
        model={**built.module.hparams["model"]},
        tags=vocabs.tags.tags,
        tag_scheme=vocabs.tags.scheme,
        entity_types=built.datamodule.entity_types,
        optimizer=instantiate(cfg.optimizer, sparse_rows=sparse_rows),
    )
    module.net.words = WordEmbedding(max(words, len(vocabs.words)), cfg.model.word_embedding_dims)
    from benchmarks.train_bench import bare_trainer

    clock = TokenClock(warm_up)
    trainer = bare_trainer(cfg, steps, clock)
    trainer.fit(module, datamodule=built.datamodule)
    seconds = clock.ended - (clock.started or clock.ended)
    return {
        "words": module.net.words.embedding.num_embeddings,
        "sparse_rows": sparse_rows,
        "tokens": clock.tokens,
        "seconds": seconds,
        "us_per_token": 1e6 * seconds / max(clock.tokens, 1),
    }


def measure(data_dir: str, quick: bool = False) -> dict:
    import torch

    from benchmarks.default_model import bench_config, build_default_model
    from nerlab.training.numerics import flush_denormals

    flush_denormals()
    cfg = bench_config(data_dir, ["vectors=none"])
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    built = build_default_model(cfg)
    steps, warm_up = (QUICK_STEPS, QUICK_WARM_UP) if quick else (STEPS, WARM_UP)
    runs = [
        measure_one(cfg, built, words, sparse_rows, steps, warm_up)
        for sparse_rows in (True, False)
        for words in SIZES
    ]
    for got in runs:
        smallest = next(r for r in runs if r["sparse_rows"] == got["sparse_rows"])
        got["vs_smallest"] = got["us_per_token"] / smallest["us_per_token"]
    return {
        "runs": runs,
        "corpus_words": len(built.datamodule.vocabs.words),
        "steps": steps,
        "warm_up": warm_up,
        "torch_threads": torch.get_num_threads(),
        "quick": quick,
    }


def run(data_dir, *, quick: bool = False, threads=None, timeout=None) -> dict:
    """:func:`measure` in a child process."""
    return run_child(
        "benchmarks.vocab_bench", data_dir, quick=quick, threads=threads, timeout=timeout
    )


if __name__ == "__main__":
    child_main("benchmarks.vocab_bench", measure)
