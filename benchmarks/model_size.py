"""Size on disk of the default model's saved directory (``model_info.json`` + weights), and
the tagger's cold start and peak memory at inference.

The model is saved exactly as ``make train`` saves it (:func:`nerlab.inference.model_dir.build_info`
and :func:`~nerlab.inference.model_dir.save_model`) into a temporary folder, whose files are
summed. Given a CoNLL file, a child process (:mod:`benchmarks.tagger_rss`) then loads that folder
with :class:`nerlab.Tagger` and tags the file, reporting its cold start and peak resident set
size.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def run(
    built, *, tag_file: Path | None = None, threads: int | None = None, timeout: float | None = None
) -> dict:
    import sys

    from benchmarks.peers import run_json
    from nerlab.inference.model_dir import save_model
    from nerlab.training.run import model_info

    datamodule, net = built.datamodule, built.module.net
    info = model_info(built.cfg, datamodule, net)
    with tempfile.TemporaryDirectory(prefix="nerlab-bench-") as tmp:
        weights, info_file = save_model(Path(tmp) / "model", net, info)
        files = {p.name: p.stat().st_size for p in (weights, info_file)}
        tagger = None
        if tag_file is not None:
            command = [sys.executable, "-m", "benchmarks.tagger_rss", "--json"]
            command += ["--model-dir", str(Path(tmp) / "model"), "--file", str(tag_file)]
            if threads:
                command += ["--threads", str(threads)]
            command += ["--started-at", repr(time.time())]
            tagger = run_json(command, threads=threads, timeout=timeout)
    total = sum(files.values())
    return {
        "bytes": total,
        "mb": total / 2**20,
        "files": files,
        "parameters": sum(p.numel() for p in net.parameters()),
        "vocab_words": len(datamodule.vocabs.words),
        "tagger": tagger,
        "tagger_peak_rss_mb": tagger["peak_rss_mb"] if tagger else None,
        "tagger_cold_start_s": tagger["cold_start_s"] if tagger else None,
    }
