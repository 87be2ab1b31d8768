"""Using a trained model: the model directory, :class:`Tagger`, the tokenizer, the MLflow model.

Nothing here imports Lightning, torchmetrics, Hydra or MLflow (``nerlab.inference.pyfunc``, the
MLflow model, imports MLflow when MLflow loads it), so a served or embedded tagger carries only
torch, NumPy, numba and safetensors.
"""

from nerlab.data.tokenizer import tokenize
from nerlab.inference.model_dir import load_model, read_info, save_model
from nerlab.inference.tagger import Tagger, entities

__all__ = ["Tagger", "entities", "load_model", "read_info", "save_model", "tokenize"]
