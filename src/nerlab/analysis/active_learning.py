"""A simulated labelling loop: does choosing what to label by the model's uncertainty pay?

Start from ``seed_size`` training sentences drawn at random; each round, train a model on the
labelled sentences (``nerlab.training.run.train``, the recipe's overrides), score it on the test
split, and let the strategy choose the next ``batch_size`` sentences from the rest of the
training split (the "pool": its labels are hidden until chosen), exactly as ``make select``
chooses (:mod:`nerlab.analysis.selection`). Every (strategy, seed) pair is an MLflow run of the
experiment ``experiment`` with ``test_f1`` logged at each round (step = labelled sentences) and
each round's training run its child; :func:`plot` draws F1 against labelled sentences.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerlab.analysis.selection import score_units, select, uncertainty, units_from_sentences

log = logging.getLogger(__name__)


@dataclass
class Round:
    strategy: str
    seed: int
    round: int
    labelled: int
    test_f1: float
    val_f1: float
    seconds: float


def _write(path: Path, sentences) -> None:
    from nerlab.data.conll import write_conll

    write_conll(
        path, ([(t, "_", "_", g) for t, g in zip(s.tokens, s.tags, strict=True)] for s in sentences)
    )


def simulate(
    data_dir: str | Path,
    *,
    strategies: Sequence[str] = ("least_confidence", "margin", "random"),
    seeds: Sequence[int] = (1, 2, 3),
    seed_size: int = 500,
    batch_size: int = 500,
    rounds: int = 6,
    overrides: Sequence[str] = (),
    tracking_uri: str | None = None,
    experiment: str = "active-learning",
    work_dir: str | Path | None = None,
) -> list[Round]:
    """Run the loop for every strategy and seed; return every round's scores."""
    import time

    import mlflow

    from nerlab.data.conll import read_conll, to_iob2
    from nerlab.inference import Tagger
    from nerlab.inference.model_uri import default_tracking_uri
    from nerlab.training.config import compose
    from nerlab.training.run import train

    data_dir = Path(data_dir).resolve()
    source = data_dir / "train.txt"
    pool_all, _, _ = to_iob2(read_conll(source), source)
    store = default_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment(experiment)
    work = Path(work_dir or tempfile.mkdtemp(prefix="nerlab-al-"))
    results: list[Round] = []
    for seed in seeds:
        start = np.random.default_rng(seed).choice(len(pool_all), size=seed_size, replace=False)
        for strategy in strategies:
            labelled = sorted(start.tolist())
            with mlflow.start_run(run_name=f"{strategy} seed {seed}") as parent:
                mlflow.log_params(
                    {"strategy": strategy, "seed": seed, "seed_size": seed_size,
                     "batch_size": batch_size, "rounds": rounds, "data_dir": str(data_dir),
                     "overrides": " ".join(overrides)}
                )  # fmt: skip
                for r in range(rounds):
                    folder = work / f"{strategy}-{seed}" / f"round{r}"
                    folder.mkdir(parents=True, exist_ok=True)
                    _write(folder / "train.txt", [pool_all[i] for i in labelled])
                    cfg = compose(
                        [
                            f"data.dir={folder}",
                            f"data.val_file={data_dir / 'valid.txt'}",
                            f"data.test_file={data_dir / 'test.txt'}",
                            f"seed={seed}",
                            f"paths.root_dir={folder}",
                            f"logger.mlflow.tracking_uri={store}",
                            f"logger.mlflow.experiment_name={experiment}-rounds",
                            f"logger.mlflow.run_name={strategy} seed {seed} round {r}",
                            "logger.mlflow.log_model=false",
                            "trainer.enable_progress_bar=false",
                            "trainer.enable_model_summary=false",
                            *overrides,
                        ],
                        output_dir=folder / "run",
                    )
                    began = time.perf_counter()
                    summary = train(cfg)
                    seconds = time.perf_counter() - began
                    done = Round(strategy, seed, r, len(labelled), summary["test_f1"],
                                 summary["val_f1"], seconds)  # fmt: skip
                    results.append(done)
                    mlflow.log_metric("test_f1", done.test_f1, step=done.labelled)
                    mlflow.log_metric("val_f1", done.val_f1, step=done.labelled)
                    mlflow.MlflowClient().set_tag(
                        summary["run_id"], "mlflow.parentRunId", parent.info.run_id
                    )
                    log.info("%s", json.dumps(done.__dict__))
                    if r == rounds - 1:
                        break
                    chosen_set = set(labelled)
                    pool = [i for i in range(len(pool_all)) if i not in chosen_set]
                    tagger = Tagger.load(summary["model_dir"], batch_size=256)
                    sentences = [pool_all[i] for i in pool]
                    units = units_from_sentences(
                        [s.tokens for s in sentences], list(range(len(sentences)))
                    )
                    _, log_paths = score_units(tagger, units, documents=False)
                    tokens = np.asarray([u.tokens for u in units])
                    scores = uncertainty(strategy, log_paths, tokens)
                    picked = select(units, scores, batch_size, strategy, seed=seed * 1000 + r)
                    labelled = sorted(labelled + [pool[i] for i in picked])
    return results


def summarize(results: Sequence[Round]) -> dict:
    """Mean test F1 per strategy and labelled count, and where uncertainty reaches random's
    final F1."""
    table: dict[str, dict[int, list[float]]] = {}
    for r in results:
        table.setdefault(r.strategy, {}).setdefault(r.labelled, []).append(r.test_f1)
    means = {s: {n: float(np.mean(v)) for n, v in sorted(d.items())} for s, d in table.items()}
    out: dict = {"mean_test_f1": means}
    if "random" in means:
        final_n, final_f1 = max(means["random"].items())
        out["random_final"] = {"labelled": final_n, "test_f1": final_f1}
        for strategy, curve in means.items():
            if strategy == "random":
                continue
            reached = [n for n, f1 in curve.items() if f1 >= final_f1]
            out[f"{strategy}_reaches_random_final_at"] = min(reached) if reached else None
            out[f"{strategy}_fraction_of_random_labels"] = (
                min(reached) / final_n if reached else None
            )
    return out


def plot(results: Sequence[Round], path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    by: dict[str, dict[int, list[float]]] = {}
    for r in results:
        by.setdefault(r.strategy, {}).setdefault(r.labelled, []).append(100 * r.test_f1)
    for strategy, curve in sorted(by.items()):
        xs = sorted(curve)
        mean = [np.mean(curve[x]) for x in xs]
        low = [np.min(curve[x]) for x in xs]
        high = [np.max(curve[x]) for x in xs]
        ax.plot(xs, mean, marker="o", label=strategy)
        ax.fill_between(xs, low, high, alpha=0.15)
    ax.set_xlabel("labelled training sentences")
    ax.set_ylabel("test F1 (mean of seeds; band: min-max)")
    ax.set_title(title or "Simulated active learning on CoNLL-2003")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
