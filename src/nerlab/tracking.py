"""MLflow tracking: one fixed SQLite store, the run's loggers and its artifacts."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def tracking_uri(cfg: DictConfig) -> str:
    """The store URI with a relative SQLite path made absolute (the store never moves with
    Hydra's run directory)."""
    uri = str(cfg.mlflow.tracking_uri)
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        uri = prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def run_name(cfg: DictConfig) -> str:
    """The experiment name and the command-line overrides, e.g. ``nerlab model=char_lstm``."""
    if cfg.mlflow.run_name:
        return str(cfg.mlflow.run_name)
    overrides: list[str] = []
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # not running under @hydra.main (tests, notebooks)
        pass
    return " ".join([cfg.mlflow.experiment_name, *overrides])[:250]


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


def build_loggers(cfg: DictConfig, run_id: str | None = None):
    """Instantiate ``cfg.logger``; the ``mlflow`` entry becomes an MLFlowLogger on the store."""
    from lightning.pytorch.loggers import MLFlowLogger

    loggers = []
    mlflow_logger = None
    for name, block in (cfg.get("logger") or {}).items():
        if name == "mlflow":
            mlflow_logger = MLFlowLogger(
                experiment_name=cfg.mlflow.experiment_name,
                run_name=run_name(cfg),
                tracking_uri=tracking_uri(cfg),
                artifact_location=str(Path(cfg.mlflow.artifact_location).resolve()),
                run_id=run_id,
                tags=sweep_tags() or None,
                log_model=False,
            )
            loggers.append(mlflow_logger)
        elif block is not None:
            loggers.append(instantiate(block))
    return loggers, mlflow_logger


def log_run_artifacts(
    cfg: DictConfig,
    logger,
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
        try:
            from hydra.core.hydra_config import HydraConfig

            overrides = list(HydraConfig.get().overrides.task)
        except ValueError:
            overrides = []
        (tmp_path / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
        if report:
            (tmp_path / "classification_report.txt").write_text(report)
        (tmp_path / "summary.json").write_text(
            json.dumps({**summary, "test": test_scores}, indent=1)
        )
        if test_scores and test_scores.get("confusion"):
            plot_confusion(test_scores["confusion"], tmp_path / "confusion_matrix.png")
        for path in sorted(tmp_path.iterdir()):
            client.log_artifact(run_id, str(path))
    if cfg.mlflow.log_model:
        log_pyfunc_model(cfg, run_id, model_dir)


def log_pyfunc_model(cfg: DictConfig, run_id: str, model_dir: Path) -> str:
    """Log the model directory as MLflow's pyfunc model ``model`` (a model from code)."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    import nerlab

    mlflow.set_tracking_uri(tracking_uri(cfg))
    code = Path(__file__).with_name("mlflow_model.py")
    package_dir = Path(nerlab.__file__).parent
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            artifacts={"model_dir": str(model_dir)},
            code_paths=[str(package_dir)],
            signature=ModelSignature(inputs=Schema([ColSpec("string")])),
            pip_requirements=_requirements(),
        )
        if cfg.mlflow.register:
            mlflow.register_model(info.model_uri, cfg.mlflow.registered_model_name)
    return info.model_uri


def _requirements() -> list[str]:
    """The installed versions of what the pyfunc model needs at inference time."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("torch", "numpy", "numba", "safetensors", "mlflow", "lightning", "torchmetrics"):
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:  # pragma: no cover
            pass
    return out


def plot_confusion(confusion: dict, path: Path) -> None:
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
