"""MLflow tracking: the run's logger on one fixed store, its final metrics, artifacts and model."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf

#: what the logged MLflow model is shown with (and its signature inferred from): a list of texts
INPUT_EXAMPLE = ["John lives in London."]

# MLflow prints a progress bar per artifact it uploads or downloads; a run's log has no use for it
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def absolute_store(uri: str) -> str:
    """A relative SQLite path made absolute (the store never moves with Hydra's run directory)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        uri = prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def _overrides() -> list[str]:
    """The command-line overrides of the running Hydra job (none outside ``@hydra.main``)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def sweep_tags() -> dict[str, str]:
    """Tags that group the jobs of one Hydra multirun (grid or Optuna) in the MLflow UI."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except (ValueError, ImportError):
        return {}
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return {}
    return {"sweep_id": str(hydra_cfg.sweep.dir), "sweep_job": str(hydra_cfg.job.num)}


def prepare_sqlite_store(uri: str) -> None:
    """Make a SQLite store safe for several runs at once (a sweep's parallel jobs, two
    ``make train`` side by side): its tables are created (or migrated) by one process at a time,
    under a lock file beside it, and it is switched to write-ahead logging, where readers never
    block the writer and a writer waits for another instead of failing at once."""
    import fcntl
    import sqlite3

    path = Path(uri[len("sqlite:///") :])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            connection = sqlite3.connect(path, timeout=60)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
            finally:
                connection.close()
            from mlflow.tracking import MlflowClient

            MlflowClient(uri).search_experiments(max_results=1)  # creates or migrates the tables
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _ensure_experiment(uri: str, name: str, artifact_location: str | None) -> None:
    """Create experiment ``name`` unless it exists. Runs started together all see it missing and
    all try; the ones that lose the race find it made and go on."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    if client.get_experiment_by_name(name) is not None:
        return
    try:
        client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS" and "UNIQUE constraint" not in str(err):
            raise


class SharedStoreMLFlowLogger(MLFlowLogger):
    """Lightning's MLflow logger on one fixed store, naming and tagging runs for comparison.

    ``run_name`` defaults to the experiment name followed by the command-line overrides
    (``nerlab model=char_lstm``); the jobs of a sweep carry ``sweep_id``/``sweep_job`` tags.
    ``log_model`` here means the run's MLflow model (a pyfunc of the saved model directory,
    logged at the end of training by :func:`log_run_artifacts`), never checkpoints;
    ``register`` also registers it as a version of ``registered_model_name`` (tagged with the
    run's scores and data, described by its model card; ``registered_model_alias`` then points
    at it), as ``make register`` does.
    """

    def __init__(
        self,
        *,
        experiment_name: str = "nerlab",
        tracking_uri: str = "sqlite:///mlruns.db",
        artifact_location: str | None = None,
        run_name: str | None = None,
        run_id: str | None = None,
        log_model: bool = True,
        register: bool = False,
        registered_model_name: str = "nerlab-ner",
        registered_model_alias: str | None = None,
        **kwargs: Any,
    ) -> None:
        store = absolute_store(tracking_uri)
        if store.startswith("sqlite:///"):
            prepare_sqlite_store(store)
        if store.startswith(("http://", "https://")):
            artifact_location = None  # a tracking server keeps the artifacts where it says
        super().__init__(
            experiment_name=experiment_name,
            run_name=run_name or " ".join([experiment_name, *_overrides()])[:250],
            tracking_uri=store,
            artifact_location=str(Path(artifact_location).resolve()) if artifact_location else None,
            run_id=run_id,
            tags=sweep_tags() or None,
            log_model=False,
            **kwargs,
        )
        self.store_uri = store
        if run_id is None:
            _ensure_experiment(store, experiment_name, self._artifact_location)
        self.log_pyfunc_model = log_model
        self.register = register
        self.registered_model_name = registered_model_name
        self.registered_model_alias = registered_model_alias


def log_run_artifacts(
    cfg: DictConfig,
    logger: SharedStoreMLFlowLogger,
    summary: dict[str, Any],
    test_scores: dict | None,
    report: str | None,
    model_dir: Path,
) -> None:
    """Final metrics, the composed config, Hydra's overrides and the classification report."""
    client, run_id = logger.experiment, logger.run_id
    if test_scores:
        for name, s in test_scores["per_type"].items():
            client.log_metric(run_id, f"test_support_{name}", s["support"])
    # the UI shows a metric's last value; this one is the score of the checkpoint kept
    client.log_metric(run_id, "val_f1_best", summary["val_f1"])
    client.set_tag(run_id, "model_dir", str(model_dir.resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        (tmp_path / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(_overrides())))
        if report:
            (tmp_path / "classification_report.txt").write_text(report)
        (tmp_path / "summary.json").write_text(
            json.dumps({**summary, "test": test_scores}, indent=1)
        )
        if test_scores and test_scores.get("confusion"):
            save_confusion_plot(test_scores["confusion"], tmp_path / "confusion_matrix.png")
        for path in sorted(tmp_path.iterdir()):
            client.log_artifact(run_id, str(path))
    if logger.log_pyfunc_model:
        log_pyfunc_model(logger, model_dir)


def log_pyfunc_model(logger: SharedStoreMLFlowLogger, model_dir: Path) -> str:
    """Log the model directory as the run's MLflow model ``model`` (a model from code: MLflow
    stores ``nerlab/inference/pyfunc.py``, the package and the model directory, and loading it
    unpickles nothing)."""
    import mlflow

    import nerlab

    package = Path(nerlab.__file__).parent
    mlflow.set_tracking_uri(logger.store_uri)
    with mlflow.start_run(run_id=logger.run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(package / "inference" / "pyfunc.py"),
            artifacts={"model_dir": str(model_dir)},
            code_paths=[str(package)],
            input_example=INPUT_EXAMPLE,
            pip_requirements=_requirements(),
        )
    if logger.register:
        from nerlab.training.registry import register_model

        register_model(
            logger.run_id,
            logger.registered_model_name,
            alias=logger.registered_model_alias,
            tracking_uri=logger.store_uri,
            model_dir=str(model_dir),
        )
    return info.model_uri


def _requirements() -> list[str]:
    """The installed versions of what the MLflow model needs to tag: the inference layer's
    imports (no Lightning, torchmetrics or Hydra) and MLflow itself."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("mlflow", "torch", "numpy", "numba", "safetensors"):
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:  # pragma: no cover
            pass
    return out


def save_confusion_plot(confusion: dict, path: Path) -> None:
    """Entity-type confusion (gold rows, predicted columns; ``-`` means no such span)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = confusion["labels"]
    matrix = np.asarray(confusion["matrix"], dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.1 * len(labels) + 1.5))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted type (same span)")
    ax.set_ylabel("gold type")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=9)
    ax.set_title("Entity types on the test split")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
