"""The ``overhead`` part: what ``make train`` spends besides the training loop, one switch at
a time (progress bar, MLflow logger, callbacks) (:mod:`benchmarks.overhead_bench`)."""

from __future__ import annotations

from benchmarks.parts.part import Measurement, Part
from benchmarks.report import Row

LABELS = {
    "as_run": "as make train runs (bar every 0.5 s, MLflow, callbacks)",
    "bar_every_batch": "progress bar redrawn every batch (Lightning's default)",
    "no_progress_bar": "no progress bar",
    "no_mlflow": "no MLflow logger",
    "loop_only": "the loop alone (no logger, callbacks or bar)",
}


def _run(ctx) -> dict:
    from benchmarks import overhead_bench

    return overhead_bench.run(
        ctx.data_dir, quick=ctx.quick, threads=ctx.threads, timeout=ctx.timeout
    )


def keys(ctx, earlier: dict) -> dict:
    variants = ctx.result("overhead").get("variants") or {}
    out = {}
    for name in LABELS:
        got = variants.get(name) or {}
        out[f"overhead_{name}_epoch_seconds"] = got.get("train_seconds")
        out[f"overhead_{name}_vs_loop"] = got.get("vs_loop")
    return out


def rows(ctx, k: dict) -> list[Row]:
    note = ctx.why("overhead")
    return [
        Row(
            f"train epoch, {label} (s); ratio: / loop alone",
            k[f"overhead_{name}_epoch_seconds"],
            ratio=k[f"overhead_{name}_vs_loop"],
            note=note,
        )
        for name, label in LABELS.items()
    ]


PART = Part("overhead", (Measurement("overhead", _run),), keys, rows)
