"""One training run: seed -> data -> model -> callbacks and loggers -> Trainer -> fit -> test
with the best checkpoint -> save the model directory -> log it. Returns the run's summary
(``run_id``, ``model_dir``, ``val_f1``, ``test_f1``, ...), whose ``val_f1`` sweeps optimise.

The command line (``nerlab-train``, ``make train``) is ``nerlab.cli.train``; tests and notebooks
call :func:`train` with a config from :func:`nerlab.training.config.compose`.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.loggers.logger import DummyLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from nerlab.data.datamodule import NERDataModule
from nerlab.data.vectors import PretrainedVectors, load_pretrained, vector_coverage
from nerlab.errors import ConfigError, NerlabError
from nerlab.files import write_atomic
from nerlab.inference.model_dir import build_info, save_model
from nerlab.models.bilstm_crf import check_settings
from nerlab.training.checkpoint_io import AtomicCheckpointIO
from nerlab.training.config import flatten, model_settings
from nerlab.training.metrics import MONITOR, classification_report
from nerlab.training.module import NERModule
from nerlab.training.numerics import flush_denormals
from nerlab.training.tracking import SharedStoreMLFlowLogger, log_run_artifacts

RUN_ID_FILE = "mlflow_run_id.txt"

log = logging.getLogger(__name__)

# Lightning 2.6 warns on every run about its own use of a torch API that torch 2.13 deprecates;
# nothing a user can act on
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
# Scores are computed from metric states already summed across processes (EntityF1), so every
# rank logs the same value; Lightning's advice to average them again does not apply
warnings.filterwarnings("ignore", message=r"It is recommended to use `self.log\('(val|test)_")


def build_data_and_model(
    cfg: DictConfig, *, load_vectors: bool = True
) -> tuple[NERDataModule, NERModule, PretrainedVectors | None]:
    """Pretrained vectors -> DataModule (set up) -> NERModule with the data's sizes.

    ``load_vectors=False`` keeps random embeddings (the vocabulary then lacks the validation and
    test words that ``vectors.extend_vocab`` adds).
    """
    vectors = load_pretrained(cfg.vectors.name) if load_vectors and cfg.vectors.name else None
    base = load_base_model(cfg.get("init_from"))
    if base is not None and vectors is not None:
        dims = base[0].config.word_embedding_dims
        if vectors.dim != dims:  # the base model's embeddings decide; new words start random
            log.warning(
                "init_from=%s: its word embeddings have %d dimensions, the vectors %s %d; "
                "new words start random",
                cfg.init_from,
                dims,
                vectors.source,
                vectors.dim,
            )
            vectors = None
    extend = vectors is not None and cfg.vectors.extend_vocab
    # plain Python arguments: the DataModule's hparams go into checkpoints that load with
    # weights_only=True, which refuses OmegaConf containers
    datamodule = instantiate(
        cfg.data, _convert_="all", extra_words=vectors.__contains__ if extend else None
    )
    if base is not None:
        datamodule.base_vocabs = base[1]
    datamodule.setup("fit")
    vocabs = datamodule.vocabs
    settings = model_settings(cfg) if base is None else base_settings(cfg, base[0])
    module = NERModule(
        model={
            **settings,
            "num_words": len(vocabs.words),
            "num_chars": len(vocabs.chars),
        },
        tags=vocabs.tags.tags,
        tag_scheme=vocabs.tags.scheme,
        entity_types=datamodule.entity_types,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
    )
    if vectors is not None:
        module.net.words.load_pretrained(vocabs.words, vectors)
        train_words = {t for s in datamodule.sentences.get("train", ()) for t in s.tokens}
        coverage = vector_coverage(train_words, vectors)
        datamodule.stats["vector_coverage"] = round(coverage.fraction, 6)
        if coverage.fraction < 0.5:
            log.warning(coverage.message(vectors.source))
    if base is not None:  # after the vectors: the rows the model had keep its weights
        grown = continue_weights(base[0], module.net)
        old_types, new_types = base[1].tags.types, vocabs.tags.types
        log.info(
            "continuing from %s: %d new words, %d new characters, new entity types %s; grown: %s",
            cfg.init_from,
            len(vocabs.words) - len(base[1].words),
            len(vocabs.chars) - len(base[1].chars),
            sorted(set(new_types) - set(old_types)) or "none",
            ", ".join(grown) or "nothing",
        )
    return datamodule, module, vectors


def load_base_model(init_from: str | None):
    """``(network, vocabularies, info)`` of the model training continues from, or None."""
    if not init_from:
        return None
    from nerlab.inference.model_dir import load_model
    from nerlab.inference.model_uri import resolve_model_dir

    return load_model(resolve_model_dir(str(init_from)))


def base_settings(cfg: DictConfig, net) -> dict[str, Any]:
    """The network settings of a continued model: the base model's architecture (its weights
    fit no other), with the run's regularization; a ``model.*`` size that differs is refused."""
    base = net.config.to_dict()
    wanted = model_settings(cfg)
    keep = {"dropout", "freeze_embeddings", "constrain_transitions"}
    differ = sorted(
        k
        for k, v in wanted.items()
        if k in base
        and k not in keep
        and k not in ("num_words", "num_chars", "num_tags")
        and base[k] != v
    )
    explicit = {o.split("=")[0].lstrip("+") for o in _command_line_overrides()}
    refused = [k for k in differ if f"model.{k}" in explicit]
    if refused:
        raise ConfigError(
            f"init_from={cfg.init_from}: its architecture is fixed; "
            + ", ".join(f"model.{k}={wanted[k]} (it has {base[k]})" for k in refused)
        )
    sizes = ("num_words", "num_chars", "num_tags")  # from the extended vocabularies
    kept = {k: v for k, v in base.items() if k not in sizes}
    return {**kept, **{k: wanted[k] for k in keep if k in wanted}}


def _command_line_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:  # composed without a Hydra run (tests, the bench)
        return []


def continue_weights(old: torch.nn.Module, new: torch.nn.Module) -> list[str]:
    """Copy ``old``'s parameters into ``new``: equal shapes whole; a grown table (more words,
    characters or tags: the new ids come after the old ones) into its leading rows, the new rows
    keeping their fresh initialisation. Buffers (the transition constraints) stay ``new``'s.
    Returns the names of the grown parameters."""
    grown = []
    params = dict(new.named_parameters())
    with torch.no_grad():
        for name, value in old.named_parameters():
            target = params[name]
            if target.shape == value.shape:
                target.copy_(value)
                continue
            if target.dim() != value.dim() or any(
                a < b for a, b in zip(target.shape, value.shape, strict=True)
            ):
                raise ConfigError(
                    f"init_from: {name} has shape {tuple(value.shape)}, the new model "
                    f"{tuple(target.shape)}"
                )
            target[tuple(slice(0, n) for n in value.shape)].copy_(value)
            grown.append(name)
    return grown


def model_info(cfg: DictConfig, datamodule: NERDataModule, net, **extra) -> dict[str, Any]:
    """``model_info.json`` of a network trained with ``cfg`` on ``datamodule``'s data (what a
    tagger needs to read text as training did), plus ``extra`` keys."""
    return build_info(
        net,
        datamodule.vocabs,
        entity_types=datamodule.entity_types,
        data={
            "tag_column": cfg.data.tag_column,
            "word_length": cfg.data.word_length,
            "documents": cfg.data.get("documents", "auto"),
            "source": {
                "dataset": cfg.data.get("dataset"),
                "train_file": str(cfg.data.train_file),
                **getattr(datamodule, "source", {}),
            },
        },
        extra=extra,
    )


def resolve_checkpoint(cfg: DictConfig) -> tuple[str | None, str | None]:
    """``ckpt_path`` as a checkpoint file and the MLflow run it belongs to (or ``None``s).

    ``last`` means the ``last.ckpt`` of the most recent run under ``paths.log_dir``.
    """
    if not cfg.ckpt_path:
        return None, None
    if cfg.ckpt_path == "last":
        candidates = sorted(
            Path(cfg.paths.log_dir).glob(f"{cfg.task_name}/runs/*/checkpoints/last.ckpt"),
            key=lambda p: p.stat().st_mtime,
        )
        if not candidates:
            raise ConfigError(
                f"ckpt_path=last: no last.ckpt under {cfg.paths.log_dir}/{cfg.task_name}/runs"
            )
        path = candidates[-1]
    else:
        path = Path(cfg.ckpt_path)
        if not path.exists():
            raise ConfigError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint")
    run_file = path.parent.parent / RUN_ID_FILE  # beside checkpoints/, in the run directory
    run_id = run_file.read_text().strip() if run_file.exists() else None
    return str(path), run_id


def _loggers(cfg: DictConfig, resume_run_id: str | None) -> list:
    """``cfg.logger``'s entries; an MLflow logger continues the resumed run. In a distributed
    run only rank 0 has the MLflow logger: the other ranks never open the store (they get a
    logger that records nothing, which callbacks such as LearningRateMonitor require)."""
    loggers = []
    for block in (cfg.get("logger") or {}).values():
        if block is None or "_target_" not in block:
            continue
        if rank_zero_only.rank != 0 and issubclass(get_class(block._target_), MLFlowLogger):
            loggers.append(DummyLogger())
            continue
        extra = {"run_id": resume_run_id} if "run_id" in block and resume_run_id else {}
        loggers.append(instantiate(block, **extra))
    return loggers


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train, select on validation, test, save, log. Returns the summary printed as JSON."""
    prepare_run(cfg)
    ckpt_path, resume_run_id = resolve_checkpoint(cfg)
    datamodule, module, _ = build_data_and_model(cfg)
    trainer, checkpoint, mlflow_logger = build_trainer(cfg, resume_run_id)
    start_tracking(cfg, datamodule, trainer, checkpoint, mlflow_logger, resume_run_id)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    val_f1, best_path = selected_checkpoint(trainer, checkpoint)
    test_scores = evaluate_selected(cfg, trainer, module, datamodule, best_path)
    summary: dict[str, Any] = {
        "run_id": mlflow_logger.run_id if mlflow_logger is not None else None,
        "model_dir": None,
        "val_f1": val_f1,
        "test_f1": test_scores["f1"] if test_scores else None,
        "test_precision": test_scores["precision"] if test_scores else None,
        "test_recall": test_scores["recall"] if test_scores else None,
        "epochs": trainer.current_epoch,
        "best_checkpoint": best_path or None,
    }
    if trainer.is_global_zero:
        summary["model_dir"] = save_and_log(
            cfg, datamodule, module, summary, test_scores, mlflow_logger
        )
    _leave_process_group()
    return summary


def prepare_run(cfg: DictConfig) -> None:
    """Check what can be checked before any work; set the process up (no subnormal floats,
    deterministic cuBLAS when asked, the seed)."""
    if cfg.monitor != MONITOR:
        raise ConfigError(
            f"monitor must be {MONITOR!r} (the metric the model logs), found {cfg.monitor!r}"
        )
    check_settings(model_settings(cfg))
    flush_denormals()
    if cfg.trainer.get("deterministic"):
        # cuBLAS needs a fixed workspace to be deterministic (PyTorch's reproducibility notes)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    L.seed_everything(cfg.seed, workers=True)


def _callback(block: DictConfig) -> L.Callback:
    """One ``callbacks`` entry, instantiated; a setting it refuses is its own one-line error
    (Hydra wraps what a constructor raises in a traceback-sized message)."""
    try:
        return instantiate(block)
    except InstantiationException as err:
        if isinstance(err.__cause__, NerlabError):
            raise err.__cause__ from None
        raise


def build_trainer(
    cfg: DictConfig, resume_run_id: str | None
) -> tuple[L.Trainer, ModelCheckpoint | None, SharedStoreMLFlowLogger | None]:
    """The Trainer with ``cfg``'s callbacks and loggers; its checkpoint callback and MLflow
    logger (or None)."""
    callbacks = [_callback(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not cfg.trainer.get("enable_progress_bar", True):  # the user's switch wins
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    checkpoint = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
    loggers = _loggers(cfg, resume_run_id)
    mlflow_logger = next((lg for lg in loggers if isinstance(lg, SharedStoreMLFlowLogger)), None)
    # built as a partial, so that the objects handed over never pass through OmegaConf
    trainer: L.Trainer = instantiate(cfg.trainer, _partial_=True)(
        callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    return trainer, checkpoint, mlflow_logger


def start_tracking(
    cfg: DictConfig,
    datamodule: NERDataModule,
    trainer: L.Trainer,
    checkpoint: ModelCheckpoint | None,
    mlflow_logger: SharedStoreMLFlowLogger | None,
    resume_run_id: str | None,
) -> None:
    """Log the run's params (the composed config, the data's statistics and source) unless it
    resumes, and note its MLflow run beside the checkpoints so that a resume finds it."""
    if mlflow_logger is None:
        return
    if resume_run_id is None:  # a resumed run keeps its params
        params = flatten(OmegaConf.to_container(cfg, resolve=True))
        params.update({f"data_stats.{k}": v for k, v in datamodule.stats.items()})
        params.update({f"data_source.{k}": v for k, v in datamodule.source.items()})
        mlflow_logger.log_hyperparams(params)
    if checkpoint is not None and trainer.is_global_zero:
        write_atomic(Path(checkpoint.dirpath).parent / RUN_ID_FILE, mlflow_logger.run_id)


def selected_checkpoint(
    trainer: L.Trainer, checkpoint: ModelCheckpoint | None
) -> tuple[float, str]:
    """The validation F1 of the selected epoch and its checkpoint ("" without one)."""
    best_path = checkpoint.best_model_path if checkpoint is not None else ""
    if checkpoint is not None and checkpoint.best_model_score is not None:
        return float(checkpoint.best_model_score), best_path
    return float(trainer.callback_metrics.get(MONITOR, float("nan"))), best_path


def evaluate_selected(
    cfg: DictConfig,
    trainer: L.Trainer,
    module: NERModule,
    datamodule: NERDataModule,
    best_path: str,
) -> dict | None:
    """The test scores of the selected weights (None without a test split or ``test=false``);
    either way ``module`` ends up holding those weights."""
    if cfg.test and datamodule.splits.get("test") is not None:
        trainer.test(module, datamodule=datamodule, ckpt_path=best_path or None)
        return module.last_scores["test"]
    if best_path:
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    return None


def save_and_log(
    cfg: DictConfig,
    datamodule: NERDataModule,
    module: NERModule,
    summary: dict[str, Any],
    test_scores: dict | None,
    mlflow_logger: SharedStoreMLFlowLogger | None,
) -> str:
    """Save the model directory, log the artifacts and the MLflow model, print the report;
    returns the directory."""
    info = model_info(
        cfg,
        datamodule,
        module.net,
        scores={"val_f1": summary["val_f1"], "test": test_scores},
        mlflow_run_id=summary["run_id"],
        **({"continued_from": str(cfg.init_from)} if cfg.get("init_from") else {}),
    )
    _, info_file = save_model(
        cfg.model_dir,
        module.net,
        info,
        model_path=cfg.model_path,
        model_info_path=cfg.model_info_path,
    )
    model_dir = str(info_file.parent.resolve())
    report = classification_report(test_scores) if test_scores else None
    if mlflow_logger is not None:
        summary = {**summary, "model_dir": model_dir}
        log_run_artifacts(cfg, mlflow_logger, summary, test_scores, report, info_file.parent)
    if report:
        print(report, file=sys.stderr)
    return model_dir


def _leave_process_group() -> None:
    """Shut the distributed process group down before the process exits: left to the
    interpreter's exit, gloo's threads can abort the process ("terminate called without an
    active exception") while its peers still finish, and a launcher then waits on it."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
