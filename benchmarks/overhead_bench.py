"""What ``make train`` spends besides the training loop, one switch at a time::

    python -m benchmarks.overhead_bench --data-dir DIR [--quick] [--json]

Each variant is the real configuration (``nerlab.training.run.train``, composed as
``make train`` composes it, the data folder and a temporary store and output root set) with
one thing changed, trained for ``EPOCHS`` epochs in this one process, one after the other:

* ``as_run``: as a user gets it (progress bar redrawn every 0.5 s, MLflow logger, checkpoint,
  early stopping and learning-rate callbacks);
* ``bar_every_batch``: Lightning's own progress bar, redrawn after every batch;
* ``no_progress_bar``: ``trainer.enable_progress_bar=false``;
* ``no_mlflow``: no logger (and no learning-rate monitor, which needs one);
* ``loop_only``: no logger, no callbacks, no progress bar: the training loop alone.

A callback added to every variant (:class:`TrainTimer`) times each epoch's training (its first
batch to the start of validation); a variant's figure is the median over the epochs after the
first (:func:`benchmarks.epochs.steady`). ``vs_loop`` is a variant's epoch over ``loop_only``'s.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

from benchmarks.epochs import steady
from benchmarks.peers import child_main, run_child

EPOCHS = 5
QUICK_BATCHES = 40
NO_LOGGER = ["~logger.mlflow", "~callbacks.lr_monitor"]
VARIANTS = {
    "as_run": [],
    "bar_every_batch": [
        "callbacks.progress_bar._target_=lightning.pytorch.callbacks.TQDMProgressBar",
        "~callbacks.progress_bar.refresh_seconds",
        "+callbacks.progress_bar.refresh_rate=1",
    ],
    "no_progress_bar": ["trainer.enable_progress_bar=false"],
    "no_mlflow": NO_LOGGER,
    "loop_only": [
        *NO_LOGGER,
        "~callbacks.model_checkpoint",
        "~callbacks.early_stopping",
        "trainer.enable_progress_bar=false",
    ],
}
#: epochs timed by the TrainTimer of the run in progress (it is built by Hydra)
RECORDED: list[float] = []


class TrainTimer(L.Callback):
    """Appends each epoch's training seconds (first batch to validation) to ``RECORDED``."""

    def __init__(self) -> None:
        self.started: float | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()

    def _stop(self) -> None:
        if self.started is not None:
            RECORDED.append(time.perf_counter() - self.started)
            self.started = None

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._stop()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._stop()  # no validation this epoch


def measure_variant(data_dir: Path, overrides: list[str], quick: bool) -> list[float]:
    """The training seconds of each epoch of the real run with ``overrides``."""
    from nerlab.training.config import compose
    from nerlab.training.run import train

    with tempfile.TemporaryDirectory(prefix="nerlab-bench-overhead-") as tmp:
        root = Path(tmp)
        given = [
            f"data.dir={data_dir}",
            f"paths.root_dir={root}",
            f"logger.mlflow.tracking_uri=sqlite:///{root}/mlruns.db",
            f"trainer.max_epochs={EPOCHS}",
            "trainer.limit_val_batches=0.25",  # validation is not what is timed here
            "test=false",
            "logger.mlflow.log_model=false",
            "+callbacks.bench_timer._target_=benchmarks.overhead_bench.TrainTimer",
            *([f"trainer.limit_train_batches={QUICK_BATCHES}"] if quick else []),
        ]
        if "~logger.mlflow" in overrides:  # nothing left to set
            given = [g for g in given if not g.startswith("logger.mlflow.")]
        # the module Hydra imports the timer from (this file may run as __main__)
        from benchmarks import overhead_bench

        overhead_bench.RECORDED.clear()
        with contextlib.redirect_stdout(sys.stderr):
            train(compose([*given, *overrides], output_dir=root / "run"))
        return list(overhead_bench.RECORDED)


def measure(data_dir: str, quick: bool = False) -> dict:
    import torch

    out: dict = {"epochs_per_variant": EPOCHS, "quick": quick, "variants": {}}
    for name, overrides in VARIANTS.items():
        epochs = measure_variant(Path(data_dir).resolve(), overrides, quick)
        out["variants"][name] = {
            "overrides": overrides,
            "epochs": epochs,
            "train_seconds": steady(epochs),
        }
    loop = out["variants"]["loop_only"]["train_seconds"]
    for got in out["variants"].values():
        seconds = got["train_seconds"]
        got["vs_loop"] = seconds / loop if seconds and loop else None
    out["torch_threads"] = torch.get_num_threads()
    return out


def run(data_dir, *, quick: bool = False, threads=None, timeout=None) -> dict:
    """:func:`measure` in a child process."""
    return run_child(
        "benchmarks.overhead_bench", data_dir, quick=quick, threads=threads, timeout=timeout
    )


if __name__ == "__main__":
    child_main("benchmarks.overhead_bench", measure)
