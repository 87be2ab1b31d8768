"""Where a training step of ``make train``'s model spends its time: PyTorch's profiler over
steps of the default (or a recipe's) network on CoNLL-2003 training batches, in the order the
data module yields them, with the configured optimizer (no Lightning loop, logger or
callbacks: ``make bench parts=overhead`` measures those).

    .venv/bin/python -m benchmarks.step_profile [data_dir=../shared/data/conll2003]
        [steps=20] [rows=25] [override ...]

Any other argument is a Hydra override of ``conf/train.yaml`` (``experiment=conll03_sentence``,
``model.dropout=0.3``). Prints the wall time of a step (median of three rounds, after ten
warm-up steps), then the profiler's table of operators by their own CPU time. Run it on an
idle machine: on two cores a neighbour's job skews every figure.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.default_model import bench_config, build_default_model
from benchmarks.options import DEFAULTS


def profile_steps(
    data_dir: str | Path, overrides: list[str], *, steps: int = 20, rows: int = 25
) -> tuple[float, str]:
    """The median wall time of a step in ms, and the profiler's table over ``steps`` steps."""
    cfg = bench_config(data_dir, ["trainer.enable_progress_bar=false", *overrides])
    built = build_default_model(cfg)
    module = built.module
    module.log = module.log_dict = lambda *args, **kwargs: None  # no trainer to log to
    optimizers = module.configure_optimizers()
    optimizer = optimizers["optimizer"] if isinstance(optimizers, dict) else optimizers
    module.train()
    batches = []  # the first epoch's batches in order (more epochs' on a small data set)
    while len(batches) < 10 + 4 * steps:
        batches.extend(itertools.islice(built.datamodule.train_dataloader(), 10 + 4 * steps))
    batches = batches[: 10 + 4 * steps]

    def step(batch, index):
        loss = module.training_step(batch, index)
        loss = loss["loss"] if isinstance(loss, dict) else loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for index, batch in enumerate(batches[:10]):
        step(batch, index)
    rounds = []
    for start in range(10, 10 + 3 * steps, steps):
        began = time.perf_counter()
        for index, batch in enumerate(batches[start : start + steps]):
            step(batch, index)
        rounds.append((time.perf_counter() - began) / steps * 1000)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for index, batch in enumerate(batches[-steps:]):
            step(batch, index)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
    return statistics.median(rounds), table


def main(argv: list[str]) -> None:
    options = {"data_dir": DEFAULTS["data_dir"], "steps": "20", "rows": "25"}
    overrides = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in options:
            options[key] = value
        else:
            overrides.append(arg)
    ms, table = profile_steps(
        options["data_dir"], overrides, steps=int(options["steps"]), rows=int(options["rows"])
    )
    print(f"{ms:.1f} ms a training step (median of 3 rounds of {options['steps']})")
    print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
