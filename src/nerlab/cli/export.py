"""`make export` / `nerlab-export`: write a saved model's network as ONNX (and int8).

    nerlab-export model_dir=DIR|models:/NAME@ALIAS [quantize=int8] [tracking_uri=URI]

A ``models:/`` or ``runs:/`` URI is exported in its downloaded copy (the cache), where
``Tagger.load(URI, backend="onnx")`` finds it.

Prints one JSON line: the files written, their sizes and the largest difference between their
emission scores and PyTorch's on a check batch.
"""

from __future__ import annotations

import json

from nerlab.cli.options import main_of
from nerlab.errors import NerlabError


def export(options: dict[str, str]) -> int:
    from nerlab.inference.export import export_onnx
    from nerlab.inference.model_uri import resolve_model_dir

    if "model_dir" not in options:
        raise NerlabError("give model_dir=DIR")
    quantize = options.get("quantize") or None
    if quantize in ("none", "fp32"):
        quantize = None
    model_dir = resolve_model_dir(options["model_dir"], options.get("tracking_uri"))
    print(json.dumps(export_onnx(model_dir, quantize)))
    return 0


main = main_of("nerlab-export", export, allowed=("model_dir", "quantize", "tracking_uri"))


if __name__ == "__main__":
    raise SystemExit(main())
