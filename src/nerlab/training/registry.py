"""The MLflow Model Registry: a run's model registered as a version of a named model, tagged
with what a reviewer compares versions by, described by its model card, and optionally given
an alias (``champion``) that ``models:/NAME@ALIAS`` then loads.

Works on the SQLite store and on a tracking server alike (the registry is the tracking store).
"""

from __future__ import annotations

import logging
from typing import Any

from nerlab.errors import NerlabError
from nerlab.inference.model_card import model_card
from nerlab.inference.model_info import read_info
from nerlab.inference.model_uri import default_tracking_uri, resolve_model_dir

#: run params copied to the version's tags: the data it was trained on
DATA_PARAMS = ("data.dataset", "data_source.origin", "data_source.dir", "data.train_file")
#: run metrics copied to the version's tags (and every ``test_f1_<TYPE>``)
SCORE_METRICS = ("test_f1", "test_precision", "test_recall", "val_f1_best", "eval_ece")


def _client(store: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=store, registry_uri=store)


def run_of(run_id: str, tracking_uri: str | None = None):
    """The MLflow run ``run_id``; an unknown one is one line naming the store."""
    from mlflow.exceptions import MlflowException

    store = default_tracking_uri(tracking_uri)
    try:
        return _client(store).get_run(run_id)
    except MlflowException:
        raise NerlabError(f"run_id={run_id}: no such MLflow run in {store}") from None


def _model_uri(run) -> str:
    """The run's MLflow model: the logged model it output (MLflow 3), else ``runs:/ID/model``."""
    outputs = getattr(run, "outputs", None)
    for output in getattr(outputs, "model_outputs", None) or []:
        return f"models:/{output.model_id}"
    return f"runs:/{run.info.run_id}/model"


def version_tags(run, calibration: dict | None = None) -> dict[str, str]:
    """The tags of a registered version: the run's scores (overall and per type), its
    calibration error and the data it was trained on."""
    metrics, params = run.data.metrics, run.data.params
    tags = {"run_id": run.info.run_id}
    for key in sorted(metrics):
        if key in SCORE_METRICS or key.startswith("test_f1_"):
            tags[key] = f"{metrics[key]:.4f}"
    if calibration is not None:
        tags["calibration_ece"] = f"{calibration['ece']:.4f}"
        tags["calibration_split"] = str(calibration.get("split", "test"))
    elif "eval_ece" in metrics:
        tags["calibration_ece"] = f"{metrics['eval_ece']:.4f}"
    for key in DATA_PARAMS:
        if key in params:
            tags[key] = params[key]
    return tags


def register_model(
    run_id: str,
    name: str,
    *,
    alias: str | None = None,
    tracking_uri: str | None = None,
    calibration: dict | None = None,
    model_dir: str | None = None,
) -> dict[str, Any]:
    """Register ``runs:/RUN_ID/model`` as a new version of ``name``; tag it
    (:func:`version_tags`), describe it with its model card, and point ``alias`` at it.
    ``model_dir``: the run's saved model when at hand (else its MLflow model is read)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    store = default_tracking_uri(tracking_uri)
    run = run_of(run_id, store)
    info = read_info(model_dir or resolve_model_dir(f"runs:/{run_id}", store))
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    quiet = logging.getLogger("mlflow")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # "Successfully registered ..." on stdout is ours to print
    try:
        version = mlflow.register_model(_model_uri(run), name)
    except MlflowException as err:
        first = str(err).splitlines()[0][:160]
        raise NerlabError(f"run_id={run_id}: cannot register its model ({first})") from None
    finally:
        quiet.setLevel(level)
    client = _client(store)
    tags = version_tags(run, calibration)
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    uri = f"models:/{name}@{alias}" if alias else f"models:/{name}/{version.version}"
    card = model_card(
        info, title=f"{name} version {version.version}", calibration=calibration, registered=uri
    )
    client.update_model_version(name, version.version, description=card)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return {"name": name, "version": int(version.version), "alias": alias, "uri": uri, "tags": tags}
