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
        (tmp_path / "summary.json").write_text(json.dumps({**summary, "test": test_scores}, indent=1))
        for path in sorted(tmp_path.iterdir()):
            client.log_artifact(run_id, str(path))
