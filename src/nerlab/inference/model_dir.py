"""The saved model directory: ``model_info.json`` (plain JSON), ``model.safetensors`` and a
generated ``MODEL_CARD.md``.

Nothing in it executes code on load: the network is rebuilt from the JSON and the tensors are
read with safetensors. Files are written through ``nerlab.files.atomic_path``, so an
interrupted save never leaves a half-written model behind, and both files get the same
permissions (the process umask's).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from nerlab.data.vocab import Vocabularies
from nerlab.errors import ModelLoadError, NerlabError
from nerlab.files import atomic_path, write_atomic
from nerlab.inference.model_card import CARD_NAME, model_card
from nerlab.inference.model_info import FORMAT, FORMAT_VERSION, INFO_NAME, WEIGHTS_NAME, read_info
from nerlab.models.bilstm_crf import BiLSTMTagger, TaggerConfig, build_tagger


def build_info(
    net: BiLSTMTagger,
    vocabs: Vocabularies,
    *,
    entity_types: list[str],
    data: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": net.config.to_dict(),
        "tag_scheme": vocabs.tags.scheme,
        "tags": vocabs.tags.tags,
        "entity_types": list(entity_types),
        "data": data,
        "vocabularies": vocabs.to_json(),
        **(extra or {}),
    }


def save_model(
    model_dir: str | os.PathLike,
    net: BiLSTMTagger,
    info: dict[str, Any],
    *,
    model_path: str | os.PathLike | None = None,
    model_info_path: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Write the weights and the info file; return their paths.

    By default both go into ``model_dir``; ``model_path``/``model_info_path`` (NLP Architect's
    flags) place either file elsewhere. The info file records the weights' file name.
    """
    model_dir = Path(model_dir)
    weights = Path(model_path) if model_path else model_dir / WEIGHTS_NAME
    info_file = Path(model_info_path) if model_info_path else model_dir / INFO_NAME
    for p in (weights, info_file):
        p.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    rel = os.path.relpath(weights, info_file.parent)
    write_atomic(info_file, json.dumps({**info, "weights": rel}, indent=1, ensure_ascii=False))
    write_atomic(info_file.parent / CARD_NAME, model_card(info))
    return weights, info_file


def load_model(
    model_dir: str | os.PathLike | None = None,
    *,
    model_path: str | os.PathLike | None = None,
    model_info_path: str | os.PathLike | None = None,
) -> tuple[BiLSTMTagger, Vocabularies, dict[str, Any]]:
    """Rebuild the network from ``model_info.json`` and load the weights (no unpickling)."""
    if model_info_path is None:
        if model_dir is None:
            raise ModelLoadError("give a model directory or --model_info_path")
        model_info_path = Path(model_dir) / INFO_NAME
    info = read_info(model_info_path)
    info_file = Path(info["_path"])
    weights = (
        Path(model_path) if model_path else info_file.parent / info.get("weights", WEIGHTS_NAME)
    )
    if not weights.exists():
        raise ModelLoadError(f"{weights}: missing; the weights of {info_file}")
    try:
        vocabs = Vocabularies.from_json(info["vocabularies"])
        net = build_tagger(TaggerConfig.from_dict(info["model"]), info["tags"], info["tag_scheme"])
    except (KeyError, TypeError, ValueError, NerlabError) as err:
        raise ModelLoadError(f"{info_file}: inconsistent model settings ({err})") from None
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelLoadError(f"{weights}: not a readable safetensors file ({err})") from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).split("\n")[1].strip() if "\n" in str(err) else str(err)
        raise ModelLoadError(
            f"{weights}: the weights do not match {info_file.name} ({first})"
        ) from None
    net.eval()
    return net, vocabs, info
