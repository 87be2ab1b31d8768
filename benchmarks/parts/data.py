"""The ``data`` part: parsing, vocabularies and encoding (:mod:`benchmarks.data_bench`)."""

from __future__ import annotations

from benchmarks.parts.part import Measurement, Part
from benchmarks.report import Row


def _run(ctx) -> dict:
    from benchmarks import data_bench

    return data_bench.run(ctx.data_dir, repeats=ctx.repeats())


def keys(ctx, earlier: dict) -> dict:
    got = ctx.result("data")
    return {
        "data_train_seconds": got.get("train_seconds"),
        "data_setup_seconds": got.get("setup_seconds"),
    }


def rows(ctx, k: dict) -> list[Row]:
    return [
        Row(
            "data: train.txt parse+vocab+encode (s)", k["data_train_seconds"], note=ctx.why("data")
        ),
        Row("data: DataModule.setup, 3 splits (s)", k["data_setup_seconds"]),
    ]


PART = Part("data", (Measurement("data", _run),), keys, rows)
