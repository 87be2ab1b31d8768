"""The ``size`` part: the saved model directory on disk, and the tagger's cold start (process
start to first tags) and peak memory tagging the test split, in a process of its own
(:mod:`benchmarks.model_size`, :mod:`benchmarks.tagger_rss`)."""

from __future__ import annotations

from benchmarks.parts.part import Measurement, Part
from benchmarks.report import Row


def _run(ctx) -> dict:
    from benchmarks import model_size

    return model_size.run(
        ctx.model_dir(),
        ctx.model(),
        tag_file=ctx.data_dir / "test.txt",
        threads=ctx.threads,
        timeout=ctx.timeout,
    )


def keys(ctx, earlier: dict) -> dict:
    got = ctx.result("size")
    return {
        "model_dir_mb": got.get("mb"),
        "infer_cold_start_s": got.get("tagger_cold_start_s"),
        "infer_peak_rss_mb": got.get("tagger_peak_rss_mb"),
    }


def rows(ctx, k: dict) -> list[Row]:
    return [
        Row("model directory (MB)", k["model_dir_mb"], note=ctx.why("size")),
        Row("tagger: cold start, process start to first tags (s)", k["infer_cold_start_s"]),
        Row("tagger: peak RSS tagging the test split (MB)", k["infer_peak_rss_mb"]),
    ]


PART = Part("size", (Measurement("size", _run),), keys, rows)
