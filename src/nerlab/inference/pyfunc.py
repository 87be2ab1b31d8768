"""The MLflow pyfunc model, logged as a *model from code*: MLflow stores this file and the model
directory (``model_info.json`` + safetensors) as an artifact, so loading it unpickles nothing.

``mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(["John lives in London."])``
returns, for each text, its entities as ``{"text", "label", "start", "end", "confidence"}``.
"""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel


def _texts(model_input: Any) -> list[str]:
    """Accept a string, a list of strings, a pandas Series or a DataFrame (``text`` column or
    the first one), as MLflow may hand any of them over."""
    if isinstance(model_input, str):
        return [model_input]
    try:
        import pandas as pd

        if isinstance(model_input, pd.DataFrame):
            column = "text" if "text" in model_input.columns else model_input.columns[0]
            return [str(t) for t in model_input[column].tolist()]
        if isinstance(model_input, pd.Series):
            return [str(t) for t in model_input.tolist()]
    except ImportError:  # pragma: no cover - pandas comes with mlflow
        pass
    if isinstance(model_input, dict):
        value = model_input.get("text", model_input.get("inputs", []))
        return _texts(value)
    return [str(t) for t in list(model_input)]


class NerlabPyfunc(PythonModel):
    def load_context(self, context) -> None:
        from nerlab.inference.tagger import Tagger

        self.tagger = Tagger.load(context.artifacts["model_dir"])

    def predict(self, context, model_input: list[str], params: dict[str, Any] | None = None):
        """The entities of each text: ``[[{"text", "label", "start", "end", "confidence"}]]``."""
        return self.tagger.predict(_texts(model_input))


mlflow.models.set_model(NerlabPyfunc())
