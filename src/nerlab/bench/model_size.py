"""Size on disk of the default model's saved directory (``model_info.json`` + weights), and
the tagger's peak memory at inference.

The model is saved exactly as ``make train`` saves it (:func:`nerlab.saving.build_info` and
:func:`nerlab.saving.save_model`) into a temporary folder, whose files are summed. Given a
CoNLL file, a child process (:mod:`nerlab.bench.tagger_rss`) then loads that folder with
:class:`nerlab.Tagger` and tags the file, reporting its peak resident set size.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def run(
    built, *, tag_file: Path | None = None, threads: int | None = None, timeout: float | None = None
) -> dict:
    import sys

    from nerlab.bench.peers import run_json
    from nerlab.saving import build_info, save_model

    cfg, datamodule, net = built.cfg, built.datamodule, built.module.net
    info = build_info(
        net,
        datamodule.vocabs,
        entity_types=datamodule.entity_types,
        constrain_transitions=bool(cfg.model.constrain_transitions),
        data={"tag_column": cfg.data.tag_column, "word_length": cfg.data.word_length},
    )
    with tempfile.TemporaryDirectory(prefix="nerlab-bench-") as tmp:
        weights, info_file = save_model(Path(tmp) / "model", net, info)
        files = {p.name: p.stat().st_size for p in (weights, info_file)}
        tagger = None
        if tag_file is not None:
            command = [sys.executable, "-m", "nerlab.bench.tagger_rss", "--json"]
            command += ["--model-dir", str(Path(tmp) / "model"), "--file", str(tag_file)]
            if threads:
                command += ["--threads", str(threads)]
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
    }
