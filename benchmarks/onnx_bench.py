"""The exported tagger: ``make export``'s ONNX model, fp32 and int8, beside the torch one.

The bench's saved model directory has been exported (``nerlab.inference.export.export_onnx``
with ``quantize="int8"``). Two taggers load it with :class:`nerlab.Tagger`:
``backend="onnx"`` and ``backend="onnx", quantize="int8"``. For each, timed as the ``infer``
part times the torch tagger (:mod:`benchmarks.infer_bench`, whose figures these stand beside):

* batched: ``Tagger.tag`` on the same token lists (batches of 256), best of ``repeats``
  passes after a warm-up pass: tokens per second, and the share of tokens tagged as the torch
  tagger tags them (its tags are computed once here, untimed);
* batch 1: one 20-token sentence tagged ``calls`` times after a warm-up: p50 and p99 latency;
* the model directory's files each one reads, in bytes;

and the int8 tagger's peak memory and cold start in a process of its own
(:mod:`benchmarks.tagger_rss`, which also records that torch was not imported). Speed does not
depend on the weights, so the model may be randomly initialised; the agreement figures matter
only for a trained model (``make evaluate ... backend=onnx`` gives the F1 of each).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

VARIANTS = {"onnx": ("onnx", None), "onnx_int8": ("onnx", "int8")}


def _agreement(tags: list, reference: list) -> float:
    same = total = 0
    for ours, theirs in zip(tags, reference, strict=True):
        same += sum(a == b for a, b in zip(ours, theirs, strict=True))
        total += len(theirs)
    return same / max(total, 1)


def run(
    model_dir: Path,
    token_lists: list[list[str]],
    test_file: Path,
    *,
    repeats: int = 3,
    calls: int = 300,
    threads: int | None = None,
    timeout: float | None = None,
) -> dict:
    from benchmarks.infer_bench import BATCH_SIZE, best_pass, latency, sentence_of
    from benchmarks.peers import run_json
    from nerlab.inference import Tagger
    from nerlab.inference.model_info import CRF_NAME, INFO_NAME, ONNX_NAMES

    tokens = sum(len(t) for t in token_lists)
    one = sentence_of(token_lists)
    reference = Tagger.load(model_dir, batch_size=BATCH_SIZE, threads=threads).tag(token_lists)
    out: dict = {"sentences": len(token_lists), "tokens": tokens, "batch1_tokens": len(one)}
    for name, (backend, quantize) in VARIANTS.items():
        tagger = Tagger.load(
            model_dir, backend=backend, quantize=quantize, batch_size=BATCH_SIZE, threads=threads
        )
        seconds, tags = best_pass(tagger, token_lists, repeats)
        files = (INFO_NAME, ONNX_NAMES[quantize], CRF_NAME)
        out[name] = {
            "tokens_per_s": tokens / seconds,
            "seconds": seconds,
            "agreement_with_torch": _agreement(tags, reference),
            **latency(tagger, one, calls),
            "batch1_calls": calls,
            "model_bytes": sum((Path(model_dir) / f).stat().st_size for f in files),
        }
    command = [sys.executable, "-m", "benchmarks.tagger_rss", "--json", "--backend", "onnx"]
    command += ["--quantize", "int8", "--model-dir", str(model_dir), "--file", str(test_file)]
    if threads:
        command += ["--threads", str(threads)]
    command += ["--started-at", repr(time.time())]
    out["onnx_int8_process"] = run_json(command, threads=threads, timeout=timeout)
    return out
