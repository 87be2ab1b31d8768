"""Training speed: one epoch of the default model over the whole training split.

Run in a process of its own (``python -m benchmarks.train_bench --json --data-dir DIR``) so
that its peak resident set size is that of training alone. The model is the one ``make train``
builds (config composed from ``conf/``, GloVe vectors, the DataModule's batches); one epoch runs
through ``lightning.Trainer.fit`` with no validation, logger or checkpoint. Before the timed
``fit`` one forward/backward pass (no optimizer step) loads the compiled CRF kernels and one
step of a scratch optimizer loads the NAdam kernel, so the figure is the steady state.

Reports ``fit_seconds`` (the whole ``fit`` call), ``epoch_seconds`` (first batch to epoch
end), sentences and tokens per second of ``fit``, and ``peak_rss_mb`` (``VmHWM``).
"""

from __future__ import annotations

import argparse
import sys
import time

import lightning as L

from benchmarks.peers import peak_rss_mb, print_result

QUICK_BATCHES = 50


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
    batch = next(iter(datamodule.train_dataloader()))
    net = module.net.train()
    net.loss(net(batch), batch["tags"], batch["mask"]).backward()
    module.zero_grad(set_to_none=True)
    # and the optimizer's kernel (compiled on first use when numba's cache is empty)
    import torch

    from nerlab.training.optim import FusedNAdam

    scratch = torch.nn.Parameter(torch.zeros(4))
    scratch.grad = torch.ones(4)
    FusedNAdam([scratch]).step()


def measure(data_dir: str, *, quick: bool = False, threads: int | None = None) -> dict:
    import torch

    from benchmarks.default_model import build_default_model, compose_config
    from benchmarks.peers import set_threads

    if threads:
        set_threads(threads)
    cfg = compose_config(data_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    built = build_default_model(cfg)
    module, datamodule = built.module, built.datamodule
    _warm_up(module, datamodule)
    counter = Throughput()
    trainer = L.Trainer(
        max_epochs=1,
        limit_val_batches=0,
        limit_train_batches=QUICK_BATCHES if quick else 1.0,
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
        callbacks=[counter],
    )
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
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_BATCHES} batches only")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    result = measure(args.data_dir, quick=args.quick, threads=args.threads)
    print_result(result, args.json)


if __name__ == "__main__":
    main()
