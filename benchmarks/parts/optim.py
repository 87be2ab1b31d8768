"""The ``optim`` part: one NAdam step over the default model's parameters, ours against
torch's (:mod:`benchmarks.optim_bench`)."""

from __future__ import annotations

from benchmarks.parts.part import Measurement, Part
from benchmarks.report import Row


def _run(ctx) -> dict:
    from benchmarks import optim_bench

    return optim_bench.run(ctx.model().module, steps=20 if ctx.quick else 200)


def keys(ctx, earlier: dict) -> dict:
    got = ctx.result("optim")
    return {
        "optim_steps_per_s": got.get("fused_nadam_steps_per_s"),
        "optim_torch_steps_per_s": got.get("torch_nadam_foreach_steps_per_s"),
        "optim_speedup": got.get("speedup"),
    }


def rows(ctx, k: dict) -> list[Row]:
    return [
        Row(
            "optimizer: NAdam step, default model (steps/s)",
            k["optim_steps_per_s"],
            "torch NAdam foreach",
            k["optim_torch_steps_per_s"],
            k["optim_speedup"],
            ctx.why("optim"),
        )
    ]


PART = Part("optim", (Measurement("optim", _run),), keys, rows)
