"""Size on disk of the default model's saved directory (``model_info.json`` + weights).

The model is saved exactly as ``make train`` saves it (:func:`nerlab.saving.build_info` and
:func:`nerlab.saving.save_model`) into a temporary folder, whose files are summed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def run(built) -> dict:
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
    total = sum(files.values())
    return {
        "bytes": total,
        "mb": total / 2**20,
        "files": files,
        "parameters": sum(p.numel() for p in net.parameters()),
        "vocab_words": len(datamodule.vocabs.words),
    }
