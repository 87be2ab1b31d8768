"""The parts of the bench, in the order they run; each owns its measurements, its keys of
the JSON line and its table rows (:class:`benchmarks.parts.part.Part`)."""

from __future__ import annotations

from benchmarks.parts import (
    crf,
    data,
    flops,
    infer,
    integrations,
    onnx,
    optim,
    overhead,
    serve,
    size,
    train,
    vocab,
)

PARTS = (
    data.PART,
    crf.PART,
    optim.PART,
    train.PART,
    overhead.PART,
    vocab.PART,
    infer.PART,
    size.PART,
    flops.PART,
    onnx.PART,
    serve.PART,
    integrations.PART,
)
PART_NAMES = tuple(part.name for part in PARTS)
