"""`make bench` / ``python -m benchmarks [key=value ...]``: the benchmark suite.

Every speed figure stands beside its peer's, measured in the same run, with the ratio
ours / peer (above 1: nerlab is faster). The parts, in the order they run
(:mod:`benchmarks.parts`, each owning its measurements, its keys and its table rows):

1. ``data``: parsing, vocabularies and encoding;
2. ``crf``: our CRF (compiled and torch backends) against pytorch-crf, in the peers' venv;
3. ``optim``: the NAdam step, ours against torch's;
4. ``train``: epochs of ``make train`` as a user runs it, beside flair's ``ModelTrainer``;
   the bare training loop as a secondary figure;
5. ``overhead``: ``make train``'s epoch with and without its progress bar, logger and
   callbacks;
6. ``vocab``: the time per training token at 25k, 100k and 400k words, row-wise and dense;
7. ``infer``: the public ``Tagger`` on the test split beside spaCy and flair; the network
   alone as a secondary figure;
8. ``size``: the model directory, the tagger's cold start and peak memory;
9. ``flops``: FLOPs per token against the measured matmul peak;
10. ``onnx``: the exported tagger, fp32 and int8, beside the torch ``Tagger``;
11. ``serve``: the batching server under 16 concurrent clients (``make bench-serve``).

Options (``key=value``, :mod:`benchmarks.options`): ``data_dir``, ``quick``, ``peers``,
``threads``, ``out_dir``, ``parts``, ``timeout``.

A measurement that cannot run (no data, no peer, an error) leaves None and a reason, and the
bench goes on; ``peers=false`` leaves the peers' keys out. Prints the table, writes
``bench_results/bench-<timestamp>.json`` and ``bench_results/latest.json``, and ends with one
JSON line of the figures.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from benchmarks.context import Context
from benchmarks.options import UsageError, parse_options
from benchmarks.parts import PARTS
from benchmarks.parts.part import Part
from benchmarks.peers import ROOT, set_threads
from benchmarks.report import Row, machine_info, table, write_results


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def peer_requirements() -> dict[str, tuple[str, ...]]:
    """The modules each peer needs in ``.venv-peers``."""
    from benchmarks import flair_bench, spacy_bench

    return {"flair": flair_bench.REQUIRES, "spacy": spacy_bench.REQUIRES}


def run_part(ctx: Context, part: Part) -> None:
    """Take ``part``'s measurements, if ``parts=`` selects it; a peer's only if it can run."""
    if part.name not in ctx.options["parts"]:
        ctx.notes[part.name] = "not run (parts=...)"
        return
    for measurement in part.measurements:
        if measurement.peer in ctx.peer_missing:
            ctx.results[measurement.name] = None  # the reason is notes[peer]
            continue
        ctx.measure(measurement.name, measurement.run, needs_data=part.needs_data)


def collect(ctx: Context, parts: tuple[Part, ...] = PARTS) -> tuple[dict, list[Row]]:
    """Every part's keys, merged in order (each part sees those before it), and its rows."""
    keys: dict = {}
    for part in parts:
        keys.update(part.keys(ctx, dict(keys)))
    return keys, [row for part in parts for row in part.rows(ctx, keys)]


def headline(ctx: Context, keys: dict, parts: tuple[Part, ...] = PARTS) -> dict:
    """The JSON line's figures: ``keys`` less the peers' under ``peers=false``, the threads
    each measurement ran with, and ``quick``."""
    left_out = set() if ctx.options["peers"] else {k for part in parts for k in part.peer_keys}
    out = {key: value for key, value in keys.items() if key not in left_out}
    out["threads"] = {
        name: got.get("torch_threads", got.get("threads"))
        for name, got in ctx.results.items()
        if got and ("torch_threads" in got or "threads" in got)
    }
    out["quick"] = ctx.quick
    return out


def run(options: dict) -> tuple[Context, dict, list[Row]]:
    """Run the selected parts; return the context, the JSON line's figures and the table."""
    ctx = Context(options)
    if ctx.threads:
        set_threads(ctx.threads)
    ctx.check_peers(peer_requirements())
    try:
        for part in PARTS:
            run_part(ctx, part)
    finally:
        ctx.close()
    keys, rows = collect(ctx)
    return ctx, headline(ctx, keys), rows


def main(argv: list[str] | None = None) -> int:
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        print(f"benchmarks: error: {err}", file=sys.stderr)
        return 2
    load_before = _load_average()
    ctx, summary, rows = run(options)
    machine = machine_info(ROOT)
    # The figures are only meaningful on an otherwise idle machine: the load says if it was.
    machine["load_average_before"] = load_before
    machine["load_average_after"] = _load_average()
    print(table(rows))
    results = {
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in options.items()},
        "machine": machine,
        "summary": summary,
        "parts": ctx.results,
        "notes": ctx.notes,
        "errors": ctx.errors,
    }
    try:
        summary["results_file"] = str(write_results(options["out_dir"], results))
    except OSError as err:
        ctx.errors["results_file"] = str(err)
        summary["results_file"] = None
    summary["machine"] = machine
    summary["notes"] = {**ctx.notes, **ctx.errors}
    print(json.dumps(summary, default=str))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
