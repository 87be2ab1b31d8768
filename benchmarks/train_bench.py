"""Training speed, each kind in a process of its own (so that its peak resident set size is
that of training alone)::

    python -m benchmarks.train_bench real --data-dir DIR --epochs N [--model default]
    python -m benchmarks.train_bench bare --data-dir DIR [--quick] [--json]

``real``: what ``make train`` runs, with the sentence-level recipe (``--model sentence``,
``experiment=conll03_sentence``: like for like with flair's sentence-level tagger) or the
default document-level model (``--model default``). The config is composed from ``conf/`` as
the command line composes it (:func:`nerlab.training.config.compose`), with only the data folder
(``data.dir``), the output root and the MLflow store (``paths.root_dir``,
``logger.mlflow.tracking_uri``: a temporary folder), ``trainer.max_epochs=N`` and ``test=false``
set (``quick``: also ``trainer.limit_train_batches`` and ``trainer.limit_val_batches``). Then
:func:`nerlab.training.run.train` runs it, callbacks, MLflow logger and progress bar as
configured (the bar and anything else the run prints go to stderr). The LightningModule logs
``train_time_s`` (first batch to the end of the last training batch), ``epoch_time_s`` (with
validation) and ``train_sentences_per_s`` each epoch; they are read back from the run's MLflow
store. The figures (``sentences_per_s``, ``train_seconds``, ``val_seconds``) are the median over
the epochs after the first (the first loads kernels and caches), or the only epoch's when there
is one; ``epochs`` lists every epoch. ``tokens_per_s`` is ``sentences_per_s`` times the training
file's mean tokens per sentence (exact for a full epoch, which visits every sentence once).

``bare``: one epoch of the same model through a bare ``lightning.Trainer.fit`` (no validation,
logger, callbacks, checkpoint or progress bar), after one forward/backward pass (no optimizer
step) that loads the compiled CRF kernels and one step of a scratch optimizer that loads the
NAdam kernel, so the figure is the steady state: ``fit_seconds`` (the whole ``fit`` call),
``epoch_seconds`` (first batch to epoch end), sentences and tokens per second of ``fit``.

Both report ``peak_rss_mb`` (``VmHWM``) and ``torch_threads``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from benchmarks.epochs import steady, which_epochs
from benchmarks.peers import peak_rss_mb, print_result, run_child

QUICK_BATCHES = 50
QUICK_VAL_BATCHES = 5
#: what the LightningModule logs each epoch (``nerlab.training.module.NERModule``)
EPOCH_METRICS = ("train_time_s", "epoch_time_s", "train_sentences_per_s")


def run(
    mode: str,
    data_dir: str | Path,
    *,
    quick: bool = False,
    threads: int | None = None,
    epochs: int | None = None,
    timeout: float | None = None,
    model: str = "sentence",
) -> dict:
    """Run ``mode`` (``real`` or ``bare``) in a child process and return its JSON."""
    args = [mode, *(["--epochs", str(epochs)] if epochs else []), "--model", model]
    return run_child(
        "benchmarks.train_bench", data_dir, *args, quick=quick, threads=threads, timeout=timeout
    )


# ----------------------------------------------------------------------------- real
def real_overrides(data_dir: Path, root: Path, *, epochs: int, quick: bool) -> list[str]:
    """The overrides of the real run: the data, a temporary root and store, the epochs."""
    overrides = [
        f"data.dir={data_dir}",
        f"paths.root_dir={root}",
        f"logger.mlflow.tracking_uri=sqlite:///{root}/mlruns.db",
        f"trainer.max_epochs={epochs}",
        "test=false",
    ]
    if quick:
        overrides += [
            f"trainer.limit_train_batches={QUICK_BATCHES}",
            f"trainer.limit_val_batches={QUICK_VAL_BATCHES}",
        ]
    return overrides


#: the recipe of the sentence-level model (conf/experiment/conll03_sentence.yaml)
SENTENCE_RECIPE = "experiment=conll03_sentence"


def sentence_level(compose, overrides: list[str]) -> tuple[DictConfig, list[str]]:
    """``compose(overrides)``, composed again with the sentence-level recipe if the result
    reads document context: the figures are those of the sentence-level model, like for like
    with flair's ``SequenceTagger`` (the contract's ``train_sentences_per_s``)."""
    cfg = compose(overrides)
    if cfg.model.get("document_memory"):
        overrides = [*overrides, SENTENCE_RECIPE]
        cfg = compose(overrides)
    return cfg, overrides


def epoch_history(tracking_uri: str, run_id: str) -> dict[str, list[float]]:
    """Each of ``EPOCH_METRICS`` as the run logged it, one value an epoch, in order."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    history = {}
    for key in EPOCH_METRICS:
        metrics = sorted(
            client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp)
        )
        history[key] = [float(m.value) for m in metrics]
    return history


def epoch_figures(history: dict[str, list[float]], tokens_per_sentence: float) -> dict:
    """Per-epoch rows and the steady figures (:func:`steady`) of a run's ``history``."""
    train, total = history["train_time_s"], history["epoch_time_s"]
    speed = history["train_sentences_per_s"]
    if not train or not (len(train) == len(total) == len(speed)):
        lengths = {key: len(values) for key, values in history.items()}
        raise RuntimeError(f"the run logged no complete epoch metrics in MLflow: {lengths}")
    epochs = [
        {
            "epoch": i,
            "train_seconds": t,
            "val_seconds": max(e - t, 0.0),
            "sentences": round(s * t),
            "sentences_per_s": s,
        }
        for i, (t, e, s) in enumerate(zip(train, total, speed, strict=True))
    ]
    sentences_per_s = steady(speed)
    return {
        "sentences_per_s": sentences_per_s,
        "tokens_per_s": sentences_per_s * tokens_per_sentence,
        "train_seconds": steady(train),
        "val_seconds": steady([e["val_seconds"] for e in epochs]),
        "sentences": round(steady([e["sentences"] for e in epochs])),
        "epochs_run": len(epochs),
        "figure": which_epochs(len(epochs)),
        "epochs": epochs,
    }


def _train_file_shape(cfg) -> tuple[int, float]:
    """Sentences in the training file and its mean tokens per sentence."""
    from nerlab.data import read_conll

    path = Path(cfg.data.train_file)
    sentences = read_conll(path if path.is_absolute() else Path(cfg.data.dir) / path)
    return len(sentences), sum(len(tokens) for tokens, _ in sentences) / max(len(sentences), 1)


def measure_real(
    data_dir: str, *, epochs: int, quick: bool = False, model: str = "sentence"
) -> dict:
    """``model``: ``sentence`` (the sentence-level recipe) or ``default`` (``make train``'s
    own model, the document-level one)."""
    import torch

    from nerlab.training.config import compose
    from nerlab.training.run import train

    with tempfile.TemporaryDirectory(prefix="nerlab-bench-train-") as tmp:
        root = Path(tmp)
        overrides = real_overrides(Path(data_dir).resolve(), root, epochs=epochs, quick=quick)
        if model == "sentence":
            cfg, overrides = sentence_level(
                lambda given: compose(given, output_dir=root / "run"), overrides
            )
        else:
            cfg = compose(overrides, output_dir=root / "run")
        started = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the result
            summary = train(cfg)
        wall = time.perf_counter() - started
        history = epoch_history(cfg.logger.mlflow.tracking_uri, summary["run_id"])
    split_sentences, tokens_per_sentence = _train_file_shape(cfg)
    out = epoch_figures(history, tokens_per_sentence)
    return {
        **out,
        "full_epoch": cfg.trainer.get("limit_train_batches") in (None, 1.0)
        or out["sentences"] >= split_sentences,
        "split_sentences": split_sentences,
        "wall_seconds": wall,
        "val_f1": summary.get("val_f1"),
        "overrides": overrides,
        "model": model,
        "document_memory": bool(cfg.model.get("document_memory")),
        "callbacks": sorted((cfg.get("callbacks") or {}).keys()),
        "loggers": sorted((cfg.get("logger") or {}).keys()),
        "progress_bar": bool(cfg.trainer.get("enable_progress_bar")),
        "batch_size": int(cfg.data.batch_size),
        "precision": str(cfg.trainer.precision),
        "peak_rss_mb": peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
        "quick": quick,
    }


# ----------------------------------------------------------------------------- bare
class Throughput(L.Callback):
    """Counts the sentences and tokens trained on and times the epoch loop."""

    def __init__(self) -> None:
        self.sentences = 0
        self.tokens = 0
        self.batches = 0
        self.started = self.ended = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.sentences += int(batch["mask"].shape[0])
        self.tokens += int(batch["mask"].sum())
        self.batches += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.ended = time.perf_counter()


def _warm_up(module, datamodule) -> None:
    import torch

    from nerlab.training.optim import FusedNAdam

    batch = next(iter(datamodule.train_dataloader()))
    net = module.net.train()
    net.loss(net(batch), batch["tags"], batch["mask"]).backward()
    module.zero_grad(set_to_none=True)
    # and the optimizer's kernel (compiled on first use when numba's cache is empty)
    scratch = torch.nn.Parameter(torch.zeros(4))
    scratch.grad = torch.ones(4)
    FusedNAdam([scratch]).step()


def bare_trainer(cfg, batches: int | float, callback: L.Callback) -> L.Trainer:
    """One epoch of ``batches`` training batches (a count, or 1.0 for all) on the CPU with
    ``cfg``'s precision and gradient clipping, and nothing else but ``callback``: no
    validation, logger, checkpoint or progress bar."""
    return L.Trainer(
        max_epochs=1,
        limit_val_batches=0,
        limit_train_batches=batches,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        accelerator="cpu",
        devices=1,
        precision=cfg.trainer.precision,
        gradient_clip_val=cfg.trainer.gradient_clip_val,
        gradient_clip_algorithm=cfg.trainer.gradient_clip_algorithm,
        callbacks=[callback],
    )


def measure_bare(data_dir: str, *, quick: bool = False) -> dict:
    import torch

    from benchmarks.default_model import bench_config, build_default_model

    cfg, _ = sentence_level(lambda given: bench_config(data_dir, given), [])
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    built = build_default_model(cfg)
    module, datamodule = built.module, built.datamodule
    _warm_up(module, datamodule)
    counter = Throughput()
    trainer = bare_trainer(cfg, QUICK_BATCHES if quick else 1.0, counter)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    fit_seconds = time.perf_counter() - t0
    epoch_seconds = counter.ended - counter.started
    train_split = datamodule.splits["train"]
    return {
        "fit_seconds": fit_seconds,
        "epoch_seconds": epoch_seconds,
        "sentences": counter.sentences,
        "tokens": counter.tokens,
        "batches": counter.batches,
        "full_epoch": counter.sentences >= len(train_split),
        "split_sentences": len(train_split),
        "sentences_per_s": counter.sentences / fit_seconds,
        "tokens_per_s": counter.tokens / fit_seconds,
        "epoch_sentences_per_s": counter.sentences / max(epoch_seconds, 1e-9),
        "batch_size": int(cfg.data.batch_size),
        "precision": str(cfg.trainer.precision),
        "optimizer": str(cfg.optimizer._target_),
        "peak_rss_mb": peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
        "quick": quick,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_bench")
    parser.add_argument("mode", choices=("real", "bare"))
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_BATCHES} batches an epoch")
    parser.add_argument("--epochs", type=int, default=None, help="real: epochs of the run")
    parser.add_argument(
        "--model",
        choices=("sentence", "default"),
        default="sentence",
        help="real: the sentence-level recipe (like flair's) or make train's default model",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.mode == "real" and not args.epochs:
        parser.error("real needs --epochs N")
    if args.threads:
        from benchmarks.peers import set_threads

        set_threads(args.threads)
    if args.mode == "real":
        result = measure_real(args.data_dir, epochs=args.epochs, quick=args.quick, model=args.model)
    else:
        result = measure_bare(args.data_dir, quick=args.quick)
    print_result(result, args.json)


if __name__ == "__main__":
    main()
