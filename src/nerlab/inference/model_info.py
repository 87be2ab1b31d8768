"""The model directory's names and its ``model_info.json`` reader, free of torch (an ONNX tagger
reads the same file without it)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nerlab.errors import ModelLoadError

INFO_NAME = "model_info.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "nerlab-model"
FORMAT_VERSION = 1
#: written by ``make export``: the network as ONNX (fp32 and int8) and the CRF's scores
ONNX_NAMES = {None: "model.onnx", "int8": "model.int8.onnx"}
CRF_NAME = "crf.safetensors"


def read_info(info_path: str | os.PathLike) -> dict[str, Any]:
    info_path = Path(info_path)
    if info_path.is_dir():
        info_path = info_path / INFO_NAME
    if not info_path.exists():
        raise ModelLoadError(f"{info_path}: missing; a model directory needs {INFO_NAME}")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{info_path}: not valid JSON ({err})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ModelLoadError(f"{info_path}: not a nerlab model_info.json (no format {FORMAT!r})")
    for key in ("model", "tags", "tag_scheme", "vocabularies"):
        if key not in info:
            raise ModelLoadError(f"{info_path}: the key {key!r} is missing")
    info["_path"] = str(info_path)
    return info
