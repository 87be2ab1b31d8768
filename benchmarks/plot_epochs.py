"""The training seconds of each epoch of MLflow runs, as a plot::

    python -m benchmarks.plot_epochs --out docs/epoch-times.png \\
        --run sqlite:///mlruns.db RUN_ID "label" [--run STORE RUN_ID "label" ...]

Reads each run's ``train_time_s`` history (logged every epoch by the LightningModule: its
first training batch to the start of validation).
"""

from __future__ import annotations

import argparse
import sys


def epoch_seconds(store: str, run_id: str) -> list[float]:
    from mlflow import MlflowClient

    history = MlflowClient(tracking_uri=store).get_metric_history(run_id, "train_time_s")
    return [m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plot_epochs")
    parser.add_argument("--out", required=True)
    parser.add_argument("--run", nargs=3, action="append", metavar=("STORE", "RUN_ID", "LABEL"))
    parser.add_argument("--title", default="make train, CoNLL-2003: training seconds per epoch")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for store, run_id, label in args.run or []:
        seconds = epoch_seconds(store, run_id)
        ax.plot(range(1, len(seconds) + 1), seconds, marker="o", label=label)
        print(label, [round(s, 2) for s in seconds])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training seconds")
    ax.set_ylim(bottom=0)
    ax.set_title(args.title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
