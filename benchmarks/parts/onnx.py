"""The ``onnx`` part: the exported tagger, fp32 and int8 (:mod:`benchmarks.onnx_bench`),
each beside the torch ``Tagger`` of the ``infer`` part on the same sentences (run both,
``parts=infer,onnx``, for the ratios)."""

from __future__ import annotations

from benchmarks.parts.part import Measurement, Part, ratio
from benchmarks.report import Row

VARIANTS = (("onnx", "ONNX fp32"), ("onnx_int8", "ONNX int8"))


def _run(ctx) -> dict:
    from benchmarks import onnx_bench

    return onnx_bench.run(
        ctx.exported_dir(),
        ctx.test_sentences(),
        ctx.data_dir / "test.txt",
        repeats=ctx.repeats(),
        calls=30 if ctx.quick else 300,
        threads=ctx.threads,
        timeout=ctx.timeout,
    )


def keys(ctx, earlier: dict) -> dict:
    got = ctx.result("onnx")
    torch_tagger = earlier.get("infer_tokens_per_s")
    out: dict = {}
    for key, _label in VARIANTS:
        variant = got.get(key) or {}
        out[f"{key}_infer_tokens_per_s"] = variant.get("tokens_per_s")
        out[f"{key}_batch1_p50_ms"] = variant.get("batch1_p50_ms")
        out[f"{key}_batch1_p99_ms"] = variant.get("batch1_p99_ms")
        out[f"{key}_model_bytes"] = variant.get("model_bytes")
        out[f"{key}_agreement"] = variant.get("agreement_with_torch")
        out[f"{key}_vs_torch"] = ratio(variant.get("tokens_per_s"), torch_tagger)
    process = got.get("onnx_int8_process") or {}
    out["onnx_int8_peak_rss_mb"] = process.get("peak_rss_mb")
    out["onnx_int8_cold_start_s"] = process.get("cold_start_s")
    out["onnx_int8_torch_imported"] = process.get("torch_imported")
    return out


def rows(ctx, k: dict) -> list[Row]:
    out = []
    for key, label in VARIANTS:
        out += [
            Row(
                f"tagger {label}: batch 256 (tokens/s)",
                k[f"{key}_infer_tokens_per_s"],
                "torch Tagger",
                k["infer_tokens_per_s"],
                k[f"{key}_vs_torch"],
                ctx.why("onnx"),
            ),
            Row(
                f"tagger {label}: one 20-token sentence, p50 (ms)",
                k[f"{key}_batch1_p50_ms"],
                "torch Tagger",
                k["infer_batch1_p50_ms"],
                ratio(k["infer_batch1_p50_ms"], k[f"{key}_batch1_p50_ms"]),
            ),
            Row(f"tagger {label}: model files (bytes)", k[f"{key}_model_bytes"]),
        ]
    return out + [
        Row("tagger ONNX int8: peak RSS tagging the test split (MB)", k["onnx_int8_peak_rss_mb"]),
        Row("tagger ONNX int8: cold start (s)", k["onnx_int8_cold_start_s"]),
    ]


PART = Part("onnx", (Measurement("onnx", _run),), keys, rows)
