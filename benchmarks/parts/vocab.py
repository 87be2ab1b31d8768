"""The ``vocab`` part: the time per training token as the vocabulary grows, with row-wise and
with dense embedding updates (:mod:`benchmarks.vocab_bench`)."""

from __future__ import annotations

from benchmarks.parts.part import Measurement, Part
from benchmarks.report import Row


def _run(ctx) -> dict:
    from benchmarks import vocab_bench

    return vocab_bench.run(ctx.data_dir, quick=ctx.quick, threads=ctx.threads, timeout=ctx.timeout)


def _mode(sparse_rows: bool) -> str:
    return "rows" if sparse_rows else "dense"


def keys(ctx, earlier: dict) -> dict:
    out = {}
    for got in ctx.result("vocab").get("runs") or []:
        name = f"vocab_{got['words'] // 1000}k_{_mode(got['sparse_rows'])}"
        out[f"{name}_us_per_token"] = got["us_per_token"]
        out[f"{name}_vs_smallest"] = got["vs_smallest"]
    return out


def rows(ctx, k: dict) -> list[Row]:
    runs = ctx.result("vocab").get("runs") or []
    if not runs:
        return [Row("training step per token by vocabulary size (us)", None, note=ctx.why("vocab"))]
    return [
        Row(
            f"training, {got['words']:,} words, {_mode(got['sparse_rows'])} updates "
            "(us/token); ratio: / smallest",
            got["us_per_token"],
            ratio=got["vs_smallest"],
        )
        for got in runs
    ]


PART = Part("vocab", (Measurement("vocab", _run),), keys, rows)
