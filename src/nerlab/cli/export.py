"""`make export` / `nerlab-export`: write a saved model's network as ONNX (and int8).

    nerlab-export model_dir=DIR [quantize=int8]

Prints one JSON line: the files written, their sizes and the largest difference between their
emission scores and PyTorch's on a check batch.
"""

from __future__ import annotations

import json

from nerlab.cli.options import main_of
from nerlab.errors import NerlabError


def export(options: dict[str, str]) -> int:
    from nerlab.inference.export import export_onnx

    if "model_dir" not in options:
        raise NerlabError("give model_dir=DIR")
    quantize = options.get("quantize") or None
    if quantize in ("none", "fp32"):
        quantize = None
    print(json.dumps(export_onnx(options["model_dir"], quantize)))
    return 0


main = main_of("nerlab-export", export, allowed=("model_dir", "quantize"))


if __name__ == "__main__":
    raise SystemExit(main())
