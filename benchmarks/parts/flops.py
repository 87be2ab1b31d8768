"""The ``flops`` part: FLOPs per token of the default model, counted from its settings
(:mod:`benchmarks.flops`), this machine's measured float32 matmul peak, and the fraction of
it reached by the bare training loop (``train_bare_loop_tokens_per_s``) and by the network
alone at inference (``network_infer_tokens_per_s``): the FLOPs counted are the network's,
so the rates compared are the ones that time the network and little else.

Without data it counts with K=17 and default characters per token, and says so.
"""

from __future__ import annotations

from benchmarks.parts.part import Measurement, Part
from benchmarks.report import Row


def _run(ctx) -> dict:
    from benchmarks import flops
    from benchmarks.default_model import bench_config, model_settings

    quick = ctx.quick
    out: dict = {"peak": flops.peak_gflops(1024 if quick else 2048, 2 if quick else 5)}
    if ctx.missing_data() is None:
        built = ctx.model()
        dm = built.datamodule
        settings, num_tags = model_settings(built.cfg, built.module.net), len(dm.vocabs.tags)
        limit = 50 if quick else None
        train_chars = flops.char_positions(dm.train_dataloader(), limit)
        eval_chars = flops.char_positions(dm.test_dataloader(), limit)
    else:
        settings, num_tags = model_settings(bench_config(ctx.data_dir)), 17
        train_chars, eval_chars = {}, {}
        ctx.notes["flops"] = "no data: K=17 and default characters per token assumed"
    out.update(settings=settings, num_tags=num_tags)
    out.update(train_batches=train_chars, eval_batches=eval_chars)
    out["train_per_token"] = flops.flops_per_token(settings, num_tags, **train_chars)
    out["infer_per_token"] = flops.flops_per_token(settings, num_tags, **eval_chars)
    return out


def keys(ctx, earlier: dict) -> dict:
    from benchmarks.flops import achieved

    got = ctx.result("flops")
    train = (got.get("train_per_token") or {}).get("training")
    infer = (got.get("infer_per_token") or {}).get("inference")
    peak = (got.get("peak") or {}).get("gflops")
    out = {"flops_per_token_train": train, "flops_per_token_infer": infer, "peak_gflops": peak}
    for name, per_token, rate in (
        ("train", train, earlier.get("train_bare_loop_tokens_per_s")),
        ("infer", infer, earlier.get("network_infer_tokens_per_s")),
    ):
        reached = achieved(per_token, rate, peak) if per_token else {}
        out[f"{name}_gflops"] = reached.get("gflops")
        out[f"{name}_peak_fraction"] = reached.get("peak_fraction")
    return out


def rows(ctx, k: dict) -> list[Row]:
    return [
        Row("FLOPs/token, training", k["flops_per_token_train"], note=ctx.why("flops")),
        Row("FLOPs/token, inference", k["flops_per_token_infer"]),
        Row("matmul peak (GFLOP/s)", k["peak_gflops"]),
        Row("train achieved, bare loop (GFLOP/s)", k["train_gflops"]),
        Row("train fraction of peak", k["train_peak_fraction"]),
        Row("infer achieved, network only (GFLOP/s)", k["infer_gflops"]),
        Row("infer fraction of peak", k["infer_peak_fraction"]),
    ]


PART = Part("flops", (Measurement("flops", _run),), keys, rows, needs_data=False)
