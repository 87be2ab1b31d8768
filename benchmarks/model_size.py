"""Size on disk of the default model's saved directory (``model_info.json`` + weights), and
the tagger's cold start and peak memory at inference.

The model directory is the one the bench saved as ``make train`` saves it
(:meth:`benchmarks.context.Context.model_dir`); its two files are summed (the ONNX files that
the ``onnx`` part may add later are not). Given a CoNLL file, a child process
(:mod:`benchmarks.tagger_rss`) then loads that folder with :class:`nerlab.Tagger` and tags the
file, reporting its cold start and peak resident set size.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def run(
    model_dir: Path,
    built,
    *,
    tag_file: Path | None = None,
    threads: int | None = None,
    timeout: float | None = None,
) -> dict:
    from benchmarks.peers import run_json
    from nerlab.inference.model_info import INFO_NAME, WEIGHTS_NAME

    files = {name: (Path(model_dir) / name).stat().st_size for name in (WEIGHTS_NAME, INFO_NAME)}
    tagger = None
    if tag_file is not None:
        command = [sys.executable, "-m", "benchmarks.tagger_rss", "--json"]
        command += ["--model-dir", str(model_dir), "--file", str(tag_file)]
        if threads:
            command += ["--threads", str(threads)]
        command += ["--started-at", repr(time.time())]
        tagger = run_json(command, threads=threads, timeout=timeout)
    total = sum(files.values())
    net = built.module.net
    return {
        "bytes": total,
        "mb": total / 2**20,
        "files": files,
        "parameters": sum(p.numel() for p in net.parameters()),
        "vocab_words": len(built.datamodule.vocabs.words),
        "tagger": tagger,
        "tagger_peak_rss_mb": tagger["peak_rss_mb"] if tagger else None,
        "tagger_cold_start_s": tagger["cold_start_s"] if tagger else None,
    }
