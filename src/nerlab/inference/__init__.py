"""Using a trained model: the model directory, :class:`Tagger`, the tokenizer, the MLflow model.

Nothing here imports Lightning, torchmetrics, Hydra or MLflow (``nerlab.inference.pyfunc``, the
MLflow model, imports MLflow when MLflow loads it), so a served or embedded tagger carries only
torch (or onnxruntime), NumPy and safetensors.
"""

from nerlab.data.tokenizer import tokenize
from nerlab.inference.tagger import Tagger, entities

__all__ = ["Tagger", "entities", "load_model", "read_info", "save_model", "tokenize"]


def __getattr__(name: str):
    # the model directory's save and load need torch: imported on first use, so that an ONNX
    # tagger (``Tagger.load(..., backend="onnx")``) never imports it
    if name in ("load_model", "save_model"):
        from nerlab.inference import model_dir

        return getattr(model_dir, name)
    if name == "read_info":
        from nerlab.inference.model_info import read_info

        return read_info
    raise AttributeError(f"module 'nerlab.inference' has no attribute {name!r}")
