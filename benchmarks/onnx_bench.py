"""The exported tagger against the PyTorch one: ``make export``'s ONNX model, fp32 and int8.

The default model is saved and exported (``nerlab.inference.export.export_onnx`` with
``quantize="int8"``) into a temporary model directory. Three taggers load it with
:class:`nerlab.Tagger`: ``backend="torch"``, ``backend="onnx"`` and ``backend="onnx",
quantize="int8"``. For each:

* batched: ``Tagger.tag`` on every test sentence (batches of 256), best of ``repeats`` passes
  after a warm-up pass: tokens per second, and the share of tokens tagged as the torch tagger
  tags them;
* batch 1: one 20-token sentence tagged ``calls`` times after a warm-up: p50 and p99 latency;
* the model directory's files each one reads, in bytes;

and the int8 tagger's peak memory and cold start in a process of its own
(:mod:`benchmarks.tagger_rss`, which also records that torch was not imported). Speed does not
depend on the weights, so the model may be randomly initialised; the agreement figures matter
only for a trained model (``make evaluate ... backend=onnx`` gives the F1 of each).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

VARIANTS = {"torch": ("torch", None), "onnx": ("onnx", None), "onnx_int8": ("onnx", "int8")}


def _sentence_of(token_lists: list[list[str]], length: int = 20) -> list[str]:
    for tokens in token_lists:
        if len(tokens) == length:
            return tokens
    longest = max(token_lists, key=len)
    return (longest * length)[:length]


def run(
    model_dir: Path,
    test_file: Path,
    *,
    repeats: int = 3,
    calls: int = 300,
    max_sentences: int | None = None,
    threads: int | None = None,
    timeout: float | None = None,
) -> dict:
    from benchmarks.peers import run_json
    from nerlab.data import read_conll
    from nerlab.inference import Tagger
    from nerlab.inference.model_info import CRF_NAME, INFO_NAME, ONNX_NAMES, WEIGHTS_NAME

    token_lists = [s.tokens for s in read_conll(test_file)]
    if max_sentences:
        token_lists = token_lists[:max_sentences]
    tokens = sum(len(t) for t in token_lists)
    one = _sentence_of(token_lists)
    files = {
        "torch": (INFO_NAME, WEIGHTS_NAME),
        "onnx": (INFO_NAME, ONNX_NAMES[None], CRF_NAME),
        "onnx_int8": (INFO_NAME, ONNX_NAMES["int8"], CRF_NAME),
    }
    out: dict = {"sentences": len(token_lists), "tokens": tokens, "batch1_tokens": len(one)}
    reference = None
    for name, (backend, quantize) in VARIANTS.items():
        tagger = Tagger.load(
            model_dir, backend=backend, quantize=quantize, batch_size=256, threads=threads
        )
        tags = tagger.tag(token_lists)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            tags = tagger.tag(token_lists)
            best = min(best, time.perf_counter() - start)
        if reference is None:
            reference = tags
        same = sum(
            a == b for x, y in zip(tags, reference, strict=True) for a, b in zip(x, y, strict=True)
        )
        for _ in range(20):
            tagger.tag([one])
        latencies = []
        for _ in range(calls):
            start = time.perf_counter()
            tagger.tag([one])
            latencies.append((time.perf_counter() - start) * 1000)
        cuts = statistics.quantiles(latencies, n=100)
        out[name] = {
            "tokens_per_s": tokens / best,
            "seconds": best,
            "agreement_with_torch": same / tokens,
            "batch1_p50_ms": statistics.median(latencies),
            "batch1_p99_ms": cuts[98],
            "batch1_calls": calls,
            "model_bytes": sum((Path(model_dir) / f).stat().st_size for f in files[name]),
        }
    command = [sys.executable, "-m", "benchmarks.tagger_rss", "--json", "--backend", "onnx"]
    command += ["--quantize", "int8", "--model-dir", str(model_dir), "--file", str(test_file)]
    if threads:
        command += ["--threads", str(threads)]
    command += ["--started-at", repr(time.time())]
    out["onnx_int8_process"] = run_json(command, threads=threads, timeout=timeout)
    return out
