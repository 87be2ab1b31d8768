"""`make train` / `nerlab-train`: one Hydra-composed run, tracked in MLflow.

seed -> pretrained vectors -> DataModule -> model -> callbacks/loggers -> Trainer -> fit ->
test with the best checkpoint -> save the model directory -> return ``val_f1`` (so sweeps
optimise it). The last stdout line is a JSON object with ``run_id``, ``model_dir``, ``test_f1``
and ``val_f1``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from nerlab.errors import ConfigError, NerlabError

log = logging.getLogger("nerlab.train")

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
RUN_ID_FILE = "mlflow_run_id.txt"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are kept as values."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def _model_settings(cfg: DictConfig) -> dict[str, Any]:
    """The model group minus the keys that are not network hyper-parameters."""
    settings = OmegaConf.to_container(cfg.model, resolve=True)
    for key in ("embeddings", "embeddings_extend_vocab", "constrain_transitions"):
        settings.pop(key, None)
    settings["char_kernel_sizes"] = list(settings.get("char_kernel_sizes", [3]))
    return settings


def _resolve_checkpoint(cfg: DictConfig) -> tuple[str | None, str | None]:
    """Map ``ckpt_path`` to a checkpoint file and the MLflow run it belongs to.

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
    run_file = path.parent / RUN_ID_FILE
    run_id = run_file.read_text().strip() if run_file.exists() else None
    return str(path), run_id


def build_data_and_model(cfg: DictConfig, *, load_vectors: bool = True):
    """Pretrained vectors -> DataModule (set up) -> NERModule with data-derived sizes.

    Returns ``(datamodule, module, vectors)``. ``load_vectors=False`` keeps random embeddings
    (the vocabulary then lacks the validation/test words ``embeddings_extend_vocab`` adds).
    """
    from hydra.utils import instantiate

    from nerlab.lightning_module import NERModule
    from nerlab.models.embeddings import load_pretrained

    vectors = None
    if load_vectors and cfg.model.embeddings:
        vectors = load_pretrained(cfg.model.embeddings)
        if vectors.dim != cfg.model.word_embedding_dims:
            raise ConfigError(
                f"model.embeddings={cfg.model.embeddings} has {vectors.dim} dimensions but "
                f"model.word_embedding_dims={cfg.model.word_embedding_dims}; set them equal"
            )
    extend = vectors is not None and cfg.model.embeddings_extend_vocab
    datamodule = instantiate(cfg.data, extra_words=vectors.__contains__ if extend else None)
    datamodule.prepare_data()
    datamodule.setup("fit")
    vocabs = datamodule.vocabs
    settings = _model_settings(cfg)
    settings.update(num_words=len(vocabs.words), num_chars=len(vocabs.chars))
    module = NERModule(
        model=settings,
        tags=vocabs.tags.tags,
        tag_scheme=vocabs.tags.scheme,
        entity_types=datamodule.entity_types,
        optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
        scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True),
        constrain_transitions=cfg.model.constrain_transitions,
    )
    if vectors is not None:
        module.net.words.load_pretrained(vocabs.words, vectors)
    return datamodule, module, vectors


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train, select on validation, test, save, log. Returns the summary printed as JSON."""
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint

    from nerlab.metrics import MONITOR, MONITOR_MODE, classification_report
    from nerlab.saving import AtomicCheckpointIO, build_info, save_model
    from nerlab.tracking import build_loggers, log_run_artifacts

    L.seed_everything(cfg.seed, workers=True)
    ckpt_path, resume_run_id = _resolve_checkpoint(cfg)

    datamodule, module, _ = build_data_and_model(cfg)
    vocabs = datamodule.vocabs

    callbacks = []
    checkpoint = None
    for block in (cfg.get("callbacks") or {}).values():
        if block is None:
            continue
        kwargs = {}
        target = block.get("_target_", "")
        if target.endswith(("ModelCheckpoint", "EarlyStopping")):
            kwargs = {"monitor": MONITOR, "mode": MONITOR_MODE}
        callback = instantiate(block, **kwargs)
        if isinstance(callback, ModelCheckpoint):
            checkpoint = callback
        callbacks.append(callback)
    loggers, mlflow_logger = build_loggers(cfg, run_id=resume_run_id)
    trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )

    if mlflow_logger is not None and resume_run_id is None:  # a resumed run keeps its params
        params = flatten(OmegaConf.to_container(cfg, resolve=True))
        params.update({f"data_stats.{k}": v for k, v in datamodule.stats.items()})
        mlflow_logger.log_hyperparams(params)
    if mlflow_logger is not None:
        if checkpoint is not None and trainer.is_global_zero and mlflow_logger.run_id:
            Path(checkpoint.dirpath).mkdir(parents=True, exist_ok=True)
            (Path(checkpoint.dirpath) / RUN_ID_FILE).write_text(mlflow_logger.run_id)

    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    best_path = checkpoint.best_model_path if checkpoint is not None else ""
    val_f1 = (
        float(checkpoint.best_model_score)
        if checkpoint is not None and checkpoint.best_model_score is not None
        else float(trainer.callback_metrics.get(MONITOR, float("nan")))
    )
    test_scores = None
    if cfg.test and datamodule.splits.get("test") is not None:
        trainer.test(module, datamodule=datamodule, ckpt_path=best_path or None)
        test_scores = module.last_scores["test"]
    elif best_path:  # keep the selected weights for saving
        import torch

        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)

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
    if not trainer.is_global_zero:
        return summary

    model_dir = Path(cfg.model_dir)
    info = build_info(
        module.net,
        vocabs,
        entity_types=datamodule.entity_types,
        constrain_transitions=bool(cfg.model.constrain_transitions),
        data={
            "tag_column": cfg.data.tag_column,
            "word_length": cfg.data.word_length,
        },
        extra={
            "scores": {"val_f1": val_f1, "test": test_scores},
            "mlflow_run_id": summary["run_id"],
        },
    )
    weights, info_file = save_model(
        model_dir, module.net, info, model_path=cfg.model_path, model_info_path=cfg.model_info_path
    )
    summary["model_dir"] = str(info_file.parent.resolve())
    if mlflow_logger is not None:
        report = classification_report(test_scores) if test_scores else None
        log_run_artifacts(cfg, mlflow_logger, summary, test_scores, report, info_file.parent)
    if test_scores:
        print(classification_report(test_scores), file=sys.stderr)
    return summary


def _validate(cfg: DictConfig) -> None:
    """Fail before any work on settings that cannot be right."""
    if cfg.trainer.max_epochs is not None and cfg.trainer.max_epochs < 1:
        raise ConfigError(f"trainer.max_epochs must be >= 1, found {cfg.trainer.max_epochs}")
    for key in ("word_embedding_dims", "entity_tagger_lstm_dims", "character_embedding_dims"):
        if cfg.model[key] < 1:
            raise ConfigError(f"model.{key} must be positive, found {cfg.model[key]}")
    if cfg.model.char not in ("cnn", "lstm", "none"):
        raise ConfigError(f"model.char must be cnn, lstm or none, found {cfg.model.char!r}")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float:
    try:
        _validate(cfg)
        summary = train(cfg)
    except NerlabError as err:
        print(f"nerlab-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:  # one JSON line, from the process that saved the model
        print(json.dumps(summary))
        sys.stdout.flush()
    return summary["val_f1"]


# NLP Architect's train.py flags and the override each becomes.
ORIGINAL_FLAGS = {
    "-b": "data.batch_size",
    "--batch_size": "data.batch_size",
    "-e": "trainer.max_epochs",
    "--epochs": "trainer.max_epochs",
    "--train_file": "data.train_file",
    "--test_file": "data.test_file",
    "--tag_num": "data.tag_column",
    "--sentence_length": "data.sentence_length",
    "--word_length": "data.word_length",
    "--word_embedding_dims": "model.word_embedding_dims",
    "--character_embedding_dims": "model.character_embedding_dims",
    "--char_features_lstm_dims": "model.char_features_lstm_dims",
    "--entity_tagger_lstm_dims": "model.entity_tagger_lstm_dims",
    "--dropout": "model.dropout",
    "--embedding_model": "model.embeddings",
    "--model_path": "model_path",
    "--model_info_path": "model_info_path",
}


def translate_original_flags(argv: list[str]) -> list[str]:
    """Turn ``--train_file a.txt -e 5`` into Hydra overrides; other arguments pass through.

    With ``--train_file`` the generic ``bio`` data config is used, with no validation file (a
    seeded fraction of train is held out) unless the folder's settings say otherwise;
    ``--use_cudnn`` selects the GPU trainer (cuDNN LSTMs are what PyTorch uses on a GPU).
    """
    out: list[str] = []
    uses_files = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in ORIGINAL_FLAGS and (name.startswith("-")):
            if eq:
                value = inline
            else:
                if i + 1 >= len(argv):
                    raise ConfigError(f"{name} needs a value")
                value = argv[i + 1]
                i += 1
            key = ORIGINAL_FLAGS[name]
            if key in ("data.train_file", "data.test_file"):
                uses_files = True
                value = str(Path(value).resolve())
            if key in ("model_path", "model_info_path"):
                value = str(Path(value).resolve())
            out.append(f"{key}={value}")
        elif arg == "--use_cudnn":
            out.append("trainer=gpu")
        else:
            out.append(arg)
        i += 1
    if uses_files:
        out = ["data=bio", "data.dir=.", "data.val_file=null", *out]
        if not any(o.startswith("data.test_file=") for o in out):
            out.append("data.test_file=null")
    return out


def main() -> None:
    """Console entry point: accepts Hydra overrides and NLP Architect's flags."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        sys.argv = [sys.argv[0], *translate_original_flags(sys.argv[1:])]
    except NerlabError as err:
        print(f"nerlab-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    hydra_main()


if __name__ == "__main__":
    main()
