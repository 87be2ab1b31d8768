"""The ``serve`` part: the batching server (``nerlab-serve``, ONNX int8) under 16 concurrent
clients, one sentence a request (:mod:`benchmarks.serve_bench`; ``make bench-serve`` runs it
alone)."""

from __future__ import annotations

from benchmarks.parts.part import Measurement, Part
from benchmarks.report import Row


def _run(ctx) -> dict:
    from benchmarks import serve_bench

    return serve_bench.run(
        ctx.exported_dir(), ctx.data_dir / "test.txt", seconds=2.0 if ctx.quick else 10.0
    )


def keys(ctx, earlier: dict) -> dict:
    got = ctx.result("serve")
    return {
        "serve_requests_per_s": got.get("requests_per_s"),
        "serve_p50_ms": got.get("p50_ms"),
        "serve_p99_ms": got.get("p99_ms"),
        "serve_errors": got.get("errors"),
    }


def rows(ctx, k: dict) -> list[Row]:
    return [
        Row(
            "serve: 16 clients, 1 sentence each (requests/s)",
            k["serve_requests_per_s"],
            note=ctx.why("serve"),
        ),
        Row("serve: p50 latency (ms)", k["serve_p50_ms"]),
        Row("serve: p99 latency (ms)", k["serve_p99_ms"]),
        Row("serve: errors", k["serve_errors"]),
    ]


PART = Part("serve", (Measurement("serve", _run),), keys, rows)
