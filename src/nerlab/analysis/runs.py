"""Notebook 02 (``02-training-runs``): training runs side by side, from the MLflow store.

:func:`search_runs` reads an experiment's runs as a DataFrame; :func:`runs_table`,
:func:`metric_histories`, :func:`param_effect`, :func:`per_type_scores` and the ``plot_*``
functions show them. ``make results`` (``nerlab.analysis.results``) builds on
:func:`search_runs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

__all__ = [
    "sqlite_store",
    "search_runs",
    "with_best",
    "select_sweep",
    "varying_params",
    "run_labels",
    "runs_table",
    "metric_histories",
    "plot_learning_curves",
    "choose_param",
    "param_effect",
    "plot_param_effect",
    "best_run",
    "per_type_scores",
    "NOISE_PARAMS",
]

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def sqlite_store(uri: str) -> str:
    """Check that an ``sqlite:///PATH`` store exists and return its URI with an absolute path.

    MLflow would silently create an empty store at a mistyped path; this refuses instead.
    Other URIs (``http://...``, ``file:...``) are returned unchanged.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = Path(uri[len(prefix) :])
    if not path.is_file():
        raise FileNotFoundError(f"no MLflow store at {path.resolve()} (from {uri})")
    return prefix + str(path.resolve())


#: Params that differ between runs without saying anything about the model (paths, stores,
#: data statistics, Lightning's duplicate ``model/...`` hyper-parameters).
NOISE_PARAMS = (
    "paths.",
    "data_stats.",
    "mlflow.",
    "model_dir",
    "model_path",
    "model_info_path",
    "trainer.default_root_dir",
    "callbacks.model_checkpoint.dirpath",
)


def search_runs(
    tracking_uri: str,
    experiment: str = "nerlab",
    filter_string: str = "",
    *,
    finished_only: bool = False,
) -> pd.DataFrame:
    """The runs of ``experiment`` as :func:`mlflow.search_runs` gives them (one row a run,
    ``params.*``, ``metrics.*`` and ``tags.*`` columns), newest first.

    Sets the process's MLflow tracking URI to ``tracking_uri`` (checked to exist first).
    """
    import mlflow

    uri = sqlite_store(tracking_uri)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        names = [e.name for e in mlflow.search_experiments()]
        raise ValueError(f"no experiment {experiment!r} in {uri}; experiments: {names}")
    if finished_only:
        clause = "attributes.status = 'FINISHED'"
        filter_string = f"{filter_string} and {clause}" if filter_string else clause
    runs = mlflow.search_runs(
        experiment_names=[experiment], filter_string=filter_string, order_by=["start_time DESC"]
    )
    return runs.reset_index(drop=True)


def with_best(
    runs: pd.DataFrame, tracking_uri: str, metric: str | None = None, mode: str | None = None
) -> pd.DataFrame:
    """``runs`` plus a column ``metrics.<metric>_best``: the best value in each run's history of
    ``metric`` (default the model-selection metric, :data:`nerlab.training.metrics.MONITOR`,
    best as its ``MONITOR_MODE`` says; ``mode`` is ``max`` or ``min`` for another metric), i.e. for
    ``val_f1`` the score of the checkpoint that was tested and saved.

    MLflow's own ``metrics.<metric>`` column is the latest value: the last epoch's.
    """
    from mlflow import MlflowClient

    from nerlab.training.metrics import MONITOR, MONITOR_MODE

    metric = metric or MONITOR
    mode = mode or (MONITOR_MODE if metric == MONITOR else "max")
    pick = max if mode == "max" else min
    client = MlflowClient(sqlite_store(tracking_uri))
    best = []
    for run_id in runs.run_id:
        values = [m.value for m in client.get_metric_history(run_id, metric)]
        best.append(pick(values) if values else np.nan)
    out = runs.copy()
    out[f"metrics.{metric}_best"] = best
    return out


def select_sweep(
    runs: pd.DataFrame, sweep_id: str | None = None
) -> tuple[pd.DataFrame, str | None]:
    """The runs of one Hydra sweep (tag ``sweep_id``): the given one, else the most recent one.

    Without any sweep in ``runs`` (or ``sweep_id=""``), all runs are returned with ``None``.
    """
    column = "tags.sweep_id"
    if sweep_id == "" or column not in runs or runs[column].isna().all():
        return runs, None
    if sweep_id is None:
        latest = runs.dropna(subset=[column]).sort_values("start_time").iloc[-1]
        sweep_id = latest[column]
    chosen = runs[runs[column] == sweep_id]
    if chosen.empty:
        raise ValueError(f"no run with tags.sweep_id={sweep_id!r}")
    return chosen, sweep_id


def varying_params(runs: pd.DataFrame) -> list[str]:
    """Param names (without ``params.``) whose value differs between runs, noise left out."""
    out = []
    for column in runs.columns:
        if not column.startswith("params."):
            continue
        name = column[len("params.") :]
        if "/" in name or name.startswith(NOISE_PARAMS):
            continue
        if runs[column].astype(str).nunique(dropna=False) > 1:
            out.append(name)
    return sorted(out)


def run_labels(runs: pd.DataFrame) -> pd.Series:
    """A short label per run id: the first 8 digits of the id and the words of the run name
    (the experiment and its overrides) that not every run shares."""
    names = runs.get("tags.mlflow.runName", pd.Series("", index=runs.index)).fillna("")
    words = [str(name).split() for name in names]
    common = set.intersection(*(set(w) for w in words)) if len(words) > 1 else set()
    labels = [
        " ".join([rid[:8], *(w for w in ws if w not in common)])
        for rid, ws in zip(runs.run_id, words, strict=True)
    ]
    return pd.Series(labels, index=runs.run_id.values)


def runs_table(
    runs: pd.DataFrame,
    params: Sequence[str] | None = None,
    metrics: Sequence[str] = ("val_f1", "test_f1"),
) -> pd.DataFrame:
    """Params against scores: one row a run (best ``metrics[0]`` first), the given params (default:
    those that vary) then the metrics, plus status and start time."""
    params = list(varying_params(runs) if params is None else params)
    table = pd.DataFrame(index=runs.run_id.values)
    table.index.name = "run_id"
    table["status"] = runs.status.values
    table["start_time"] = runs.start_time.values
    for name in params:
        table[name] = runs.get(f"params.{name}", pd.Series(index=runs.index)).values
    for name in metrics:
        table[name] = runs.get(f"metrics.{name}", pd.Series(index=runs.index, dtype=float)).values
    if metrics:
        table = table.sort_values(metrics[0], ascending=False, na_position="last")
    return table


def metric_histories(
    tracking_uri: str,
    run_ids: Iterable[str],
    metrics: Sequence[str] = ("val_f1", "train_loss"),
) -> pd.DataFrame:
    """Every logged value of ``metrics`` for each run: long table ``run_id``, ``metric``,
    ``epoch`` (1 for the first value logged, in step order), ``step``, ``value``.

    Metrics logged once per epoch (``val_f1``, ``train_loss``) thus get their epoch number.
    """
    from mlflow import MlflowClient

    client = MlflowClient(sqlite_store(tracking_uri))
    rows = []
    for run_id in run_ids:
        for metric in metrics:
            history = sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)
            for epoch, m in enumerate(history, start=1):
                rows.append((run_id, metric, epoch, m.step, m.value))
    return pd.DataFrame(rows, columns=["run_id", "metric", "epoch", "step", "value"])


def plot_learning_curves(
    histories: pd.DataFrame, labels: Mapping[str, str] | None = None
) -> Figure:
    """One panel per metric of :func:`metric_histories`, one line per run, against the epoch."""
    import matplotlib.pyplot as plt

    labels = dict(labels) if labels is not None else {}
    metrics = list(dict.fromkeys(histories.metric)) or ["val_f1"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for run_id, group in histories[histories.metric == metric].groupby("run_id", sort=False):
            label = labels.get(run_id, run_id[:8])
            ax.plot(group.epoch, group.value, marker="o", markersize=3, label=label[:70])
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="lower center", ncol=2, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.06 * ((len(names) + 1) // 2), 1, 1))
    return fig


def choose_param(runs: pd.DataFrame, preferred: str | None = None) -> str | None:
    """The param to study: ``preferred`` if it varies across ``runs``, else the varying param
    with the fewest distinct values (a sweep axis rather than a path), else None."""
    varying = varying_params(runs)
    if preferred in varying:
        return preferred
    if not varying:
        return None
    return min(varying, key=lambda p: (runs[f"params.{p}"].astype(str).nunique(), p))


def param_effect(runs: pd.DataFrame, param: str, metric: str = "val_f1") -> pd.DataFrame:
    """``metric`` grouped by the value of ``param``: runs, mean, std, min and max per value."""
    column = f"metrics.{metric}"
    frame = pd.DataFrame(
        {param: runs[f"params.{param}"].astype(str).values, metric: runs[column].values}
    ).dropna(subset=[metric])
    table = frame.groupby(param)[metric].agg(["count", "mean", "std", "min", "max"])
    return table.rename(columns={"count": "runs"}).sort_values("mean", ascending=False)


def plot_param_effect(
    runs: pd.DataFrame, param: str, metrics: Sequence[str] = ("val_f1",)
) -> Figure:
    """Each run's score (dots) and the mean (bar) for every value of ``param``."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    values = sorted(runs[f"params.{param}"].astype(str).unique(), key=_natural)
    for ax, metric in zip(axes[0], metrics, strict=True):
        column = f"metrics.{metric}"
        for x, value in enumerate(values):
            scores = runs.loc[runs[f"params.{param}"].astype(str) == value, column].dropna()
            if scores.empty:
                continue
            ax.bar(x, scores.mean(), color="tab:blue", alpha=0.35, width=0.6)
            ax.scatter(np.full(len(scores), x), scores, color="tab:blue", zorder=3, s=18)
        ax.set_xticks(range(len(values)), values)
        ax.set_xlabel(param)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} by {param}")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _natural(value: str) -> tuple:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def best_run(
    runs: pd.DataFrame, metric: str = "val_f1", scored: str | None = "test_f1"
) -> pd.Series:
    """The row of the run with the highest ``metric`` (the model-selection score) among the
    runs that logged ``scored`` too (by default those tested, so unfinished runs are skipped)."""
    columns = [f"metrics.{m}" for m in (metric, scored) if m]
    if any(c not in runs for c in columns):
        raise ValueError(f"no run has {' and '.join(columns)}")
    candidates = runs.dropna(subset=columns)
    if candidates.empty:
        raise ValueError(f"no run has {' and '.join(columns)}")
    return candidates.loc[candidates[f"metrics.{metric}"].idxmax()]


def per_type_scores(run: pd.Series) -> pd.DataFrame:
    """The test F1 and support per entity type of one run (``test_f1_<TYPE>``,
    ``test_support_<TYPE>``), with the micro average as the last row."""
    prefix = "metrics.test_f1_"
    types = sorted(k[len(prefix) :] for k in run.index if k.startswith(prefix) and pd.notna(run[k]))
    table = pd.DataFrame(
        {
            "f1": [run[f"{prefix}{t}"] for t in types],
            "support": [run.get(f"metrics.test_support_{t}", np.nan) for t in types],
        },
        index=pd.Index(types, name="type"),
    )
    table.loc["micro avg"] = [run.get("metrics.test_f1", np.nan), table.support.sum()]
    return table
