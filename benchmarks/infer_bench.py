"""Inference speed on the test split: the public :class:`nerlab.Tagger`, and the network alone.

* :func:`run_tagger` (the headline): a saved model directory loaded with ``Tagger.load``
  (``batch_size=256``), ``Tagger.tag(token_lists)`` over the test split's token lists: tokens
  in, IOB2 tags out, encoding, batching, the network and the NumPy CRF decoding all included.
  Best of ``repeats`` passes after a warm-up pass. Then one sentence per call, in corpus order
  (``batch1_sentences`` evenly spaced ones, or all), and the latency of one 20-token sentence
  (p50 and p99 of ``calls`` calls after 20 warm-up calls).
* :func:`run_network` (a secondary, network-only figure): under ``torch.inference_mode()``,
  the DataModule's already encoded test batches (``eval_batch_size``, 256 by default, sorted by
  length) through the network to its emission scores, nothing else (no decoding: taggers
  decode in NumPy, whatever runs the network); best of ``repeats`` passes after a warm-up
  pass; and one sentence per batch.

Speed does not depend on the weights, so the model may be randomly initialised.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

BATCH_SIZE = 256


def sentence_of(token_lists: list[list[str]], length: int = 20) -> list[str]:
    """A sentence of ``length`` tokens from ``token_lists`` (the longest, repeated, if none)."""
    for tokens in token_lists:
        if len(tokens) == length:
            return tokens
    longest = max(token_lists, key=len)
    return (longest * length)[:length]


def best_pass(tagger, token_lists: list[list[str]], repeats: int) -> tuple[float, list]:
    """Seconds of the fastest of ``repeats`` ``tagger.tag`` passes after a warm-up pass, and
    the tags."""
    tags = tagger.tag(token_lists)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tags = tagger.tag(token_lists)
        best = min(best, time.perf_counter() - start)
    return best, tags


def latency(tagger, tokens: list[str], calls: int) -> dict:
    """p50 and p99 milliseconds of ``tagger.tag([tokens])`` over ``calls`` calls."""
    for _ in range(20):
        tagger.tag([tokens])
    latencies = []
    for _ in range(calls):
        start = time.perf_counter()
        tagger.tag([tokens])
        latencies.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(latencies, n=100)
    return {"batch1_p50_ms": statistics.median(latencies), "batch1_p99_ms": cuts[98]}


def _one_at_a_time(tagger, token_lists: list[list[str]], limit: int | None) -> dict:
    order = range(len(token_lists))
    if limit and limit < len(token_lists):
        order = np.linspace(0, len(token_lists) - 1, limit).round().astype(np.int64)
    chosen = [token_lists[i] for i in order]
    for tokens in chosen[:20]:
        tagger.tag([tokens])
    start = time.perf_counter()
    for tokens in chosen:
        tagger.tag([tokens])
    seconds = time.perf_counter() - start
    tokens = sum(len(t) for t in chosen)
    return {
        "batch1_sentences": len(chosen),
        "batch1_tokens": tokens,
        "batch1_seconds": seconds,
        "batch1_tokens_per_s": tokens / seconds,
    }


def run_tagger(
    model_dir: Path,
    token_lists: list[list[str]],
    *,
    repeats: int = 3,
    calls: int = 300,
    batch1_sentences: int | None = None,
    threads: int | None = None,
) -> dict:
    """``Tagger.tag`` on ``token_lists``, batched and one sentence at a time (module docstring)."""
    import torch

    from nerlab import Tagger

    tagger = Tagger.load(model_dir, batch_size=BATCH_SIZE, threads=threads)
    seconds, tags = best_pass(tagger, token_lists, repeats)
    tokens = sum(len(t) for t in tags)
    return {
        "call": f"Tagger.load(model_dir, batch_size={BATCH_SIZE}).tag(token_lists)",
        "sentences": len(token_lists),
        "tokens": tokens,
        "batch_size": BATCH_SIZE,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "sentences_per_s": len(token_lists) / seconds,
        "repeats": repeats,
        **_one_at_a_time(tagger, token_lists, batch1_sentences),
        **latency(tagger, sentence_of(token_lists), calls),
        "batch1_calls": calls,
        "torch_threads": torch.get_num_threads(),
    }


def _tag_batches(net, batches) -> int:
    import torch

    tokens = 0
    with torch.inference_mode():
        for batch in batches:
            net(batch)
            tokens += int(batch["mask"].sum())
    return tokens


def _network_passes(net, datamodule, repeats: int) -> tuple[int, float]:
    _tag_batches(net, datamodule.test_dataloader())
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        tokens = _tag_batches(net, datamodule.test_dataloader())
        best = min(best, time.perf_counter() - t0)
    return tokens, best


def run_network(built, *, repeats: int = 3, max_sentences: int | None = None) -> dict:
    """The network's emission scores on encoded batches (module docstring)."""
    import torch

    from nerlab.data.batching import make_batch, to_tensors

    datamodule = built.datamodule
    net = built.module.net.eval()
    split = datamodule.splits["test"]
    backend = net.crf.backend if net.crf is not None else None
    if net.crf is not None:
        net.crf.backend = "torch"
    try:
        tokens, best = _network_passes(net, datamodule, repeats)
        order = np.arange(len(split))
        if max_sentences and max_sentences < len(split):
            order = np.linspace(0, len(split) - 1, max_sentences).round().astype(np.int64)

        memory = bool(net.config.document_memory)  # a document model reads mention groups

        def singles(indices):
            return (
                to_tensors(make_batch(split, datamodule.table, np.array([i]), memory=memory))
                for i in indices
            )

        _tag_batches(net, singles(order[:20]))
        t0 = time.perf_counter()
        tokens1 = _tag_batches(net, singles(order))
        seconds1 = time.perf_counter() - t0
    finally:
        if net.crf is not None:
            net.crf.backend = backend
    return {
        "call": "net(batch) (emission scores) on the DataModule's encoded batches",
        "tokens": tokens,
        "sentences": len(split),
        "batch_size": int(datamodule.hparams.eval_batch_size),
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
