"""Inference speed: tokens per second tagging the whole test split with the default model.

Two settings, both under ``torch.inference_mode()`` with the network in eval mode, each batch
made from the encoded split, run through the network and decoded by the CRF (Viterbi):

* batched: the DataModule's ``test_dataloader`` (batches of ``eval_batch_size``, 256 by
  default, sorted by length), best of ``repeats`` passes after a warm-up pass;
* batch 1: one sentence at a time, in corpus order (``max_sentences`` evenly spaced sentences
  in quick mode), one pass after a short warm-up.

Speed does not depend on the weights, so the model may be randomly initialised.
"""

from __future__ import annotations

import time

import numpy as np
import torch


def _tag_batches(net, batches) -> int:
    tokens = 0
    with torch.inference_mode():
        for batch in batches:
            mask = batch["mask"]
            net.decode(net(batch), mask)
            tokens += int(mask.sum())
    return tokens


def run(built, *, repeats: int = 3, max_sentences: int | None = None) -> dict:
    from nerlab.data.batching import make_batch, to_tensors

    datamodule = built.datamodule
    net = built.module.net.eval()
    if net.crf is not None:  # decode as nerlab.Tagger does by default
        net.crf.backend = "torch"
    split = datamodule.splits["test"]

    _tag_batches(net, datamodule.test_dataloader())
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        tokens = _tag_batches(net, datamodule.test_dataloader())
        best = min(best, time.perf_counter() - t0)

    order = np.arange(len(split))
    if max_sentences and max_sentences < len(split):
        order = np.linspace(0, len(split) - 1, max_sentences).round().astype(np.int64)
    singles = (to_tensors(make_batch(split, datamodule.table, np.array([i]))) for i in order)
    _tag_batches(
        net, (to_tensors(make_batch(split, datamodule.table, np.array([i]))) for i in order[:20])
    )
    t0 = time.perf_counter()
    tokens1 = _tag_batches(net, singles)
    seconds1 = time.perf_counter() - t0
    return {
        "tokens": tokens,
        "sentences": len(split),
        "batch_size": int(datamodule.eval_batch_size),
        "seconds": best,
        "tokens_per_s": tokens / best,
        "sentences_per_s": len(split) / best,
        "batch1_sentences": len(order),
        "batch1_tokens": tokens1,
        "batch1_seconds": seconds1,
        "batch1_tokens_per_s": tokens1 / seconds1,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
    }
