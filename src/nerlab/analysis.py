"""What the notebooks compute: a data set at a glance, MLflow runs side by side, a model's errors.

The notebooks in ``notebooks/`` only choose inputs, call these functions and display what they
return (pandas DataFrames, matplotlib Figures, HTML strings), so that everything they show is
tested code. Three groups, one per notebook:

- data (``01-data-exploration``): :func:`read_splits`, :func:`corpus_summary`,
  :func:`entity_counts`, :func:`oov_rates`, :func:`top_entities` and plots;
- runs (``02-training-runs``): :func:`search_runs`, :func:`runs_table`, :func:`metric_histories`,
  :func:`param_effect`, :func:`per_type_scores` and plots;
- errors (``03-error-analysis``): :func:`span_outcomes` (every gold and predicted span sorted
  into correct, type, boundary, boundary+type, missed, spurious), breakdowns by type, length and
  whether the words were seen in training, and :func:`render_sentences` (gold and predicted
  spans highlighted).

Scores are fractions in [0, 1], as everywhere in nerlab. Nothing here touches the network.
"""

from __future__ import annotations

import html
import os
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nerlab.data.conll import Sentence, read_conll, to_iob2
from nerlab.data.tag_schemes import conlleval_spans
from nerlab.data.vocab import WordVocab

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure
    from omegaconf import DictConfig

    from nerlab.inference import Tagger
    from nerlab.models.embeddings import PretrainedVectors

#: The repository root (``src/nerlab/analysis.py`` -> ``.``), where ``conf/`` and ``mlruns.db`` are.
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Split names and the data config keys naming their files.
SPLIT_KEYS = {"train": "train_file", "val": "val_file", "test": "test_file"}

# ----------------------------------------------------------------------------------------------
# configuration and inputs


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The training config of ``make train`` composed from ``conf/`` with Hydra's Compose API.

    ``paths.root_dir`` defaults to the repository root, whatever the working directory.
    """
    from hydra import compose, initialize_config_dir

    from nerlab.train import CONF_DIR

    overrides = list(overrides)
    if not any(o.startswith("paths.root_dir=") for o in overrides):
        overrides.insert(0, f"paths.root_dir={REPO_ROOT}")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)


def latest_model_dir(outputs_dir: str | os.PathLike = REPO_ROOT / "outputs") -> Path | None:
    """The most recently saved model directory under ``outputs/`` (single runs and sweeps)."""
    outputs = Path(outputs_dir)
    found = [
        *outputs.glob("*/runs/*/model/model_info.json"),
        *outputs.glob("*/multiruns/*/*/model/model_info.json"),
    ]
    if not found:
        return None
    return max(found, key=lambda p: p.stat().st_mtime).parent


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


# ----------------------------------------------------------------------------------------------
# 01: a data set at a glance


def read_splits(
    data_dir: str | os.PathLike,
    files: Mapping[str, str | None] | None = None,
    *,
    tag_column: int = -1,
    on_invalid: str = "repair",
) -> tuple[dict[str, list[Sentence]], pd.DataFrame]:
    """Read the splits of a folder as training does (IOB2 tags) and check their tag scheme.

    ``files`` maps ``train``/``val``/``test`` to a file name in ``data_dir`` (None: no such
    split; default ``train.txt``, ``valid.txt``, ``test.txt``). Returns the sentences of each
    split and a table, one row a split: the file, the scheme detected, how many sentences were
    ill-formed in it (repaired the way conlleval reads them), the tags seen and the entity types
    that do not occur in the training split.
    """
    data_dir = Path(data_dir)
    files = dict(files or {"train": "train.txt", "val": "valid.txt", "test": "test.txt"})
    splits: dict[str, list[Sentence]] = {}
    rows = []
    for split, name in files.items():
        if not name:
            continue
        path = data_dir / name
        raw = read_conll(path, tag_column)
        iob2, scheme, repaired = to_iob2(raw, path, on_invalid=on_invalid)
        splits[split] = iob2
        rows.append(
            {
                "split": split,
                "file": str(path),
                "scheme": scheme,
                "ill_formed_sentences": repaired,
                "tags": " ".join(sorted({t for s in raw for t in s.tags})),
            }
        )
    check = pd.DataFrame(rows).set_index("split")
    train_types = _types(splits.get("train", []))
    check["types_not_in_train"] = [
        " ".join(sorted(_types(splits[split]) - train_types)) for split in check.index
    ]
    return splits, check


def splits_from_config(cfg: DictConfig) -> tuple[dict[str, list[Sentence]], pd.DataFrame]:
    """:func:`read_splits` on the folder, files, tag column and repair policy of ``cfg.data``."""
    data = cfg.data
    files = {split: data.get(key) for split, key in SPLIT_KEYS.items()}
    return read_splits(
        data.dir, files, tag_column=int(data.tag_column), on_invalid=str(data.on_invalid)
    )


def _types(sentences: Iterable[Sentence]) -> set[str]:
    return {t[2:] for s in sentences for t in s.tags if t != "O"}


def _spans(sentences: Iterable[Sentence]) -> Iterable[tuple[Sentence, str, int, int]]:
    for s in sentences:
        for type_, first, last in conlleval_spans(s.tags):
            yield s, type_, first, last


def corpus_summary(splits: Mapping[str, Sequence[Sentence]]) -> pd.DataFrame:
    """One row a split: sentences, tokens, entities, the share of tokens inside an entity and
    sentence lengths (mean, median, max)."""
    rows = {}
    for split, sentences in splits.items():
        lengths = np.array([len(s.tokens) for s in sentences])
        spans = list(_spans(sentences))
        rows[split] = {
            "sentences": len(sentences),
            "tokens": int(lengths.sum()),
            "entities": len(spans),
            "entity_token_share": sum(last - first + 1 for *_, first, last in spans)
            / max(1, int(lengths.sum())),
            "mean_length": float(lengths.mean()) if len(lengths) else 0.0,
            "median_length": float(np.median(lengths)) if len(lengths) else 0.0,
            "max_length": int(lengths.max()) if len(lengths) else 0,
            "types": len(_types(sentences)),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def entity_counts(splits: Mapping[str, Sequence[Sentence]]) -> pd.DataFrame:
    """Entities per type (rows) and split (columns), most frequent type first."""
    counts = {
        split: Counter(type_ for _, type_, _, _ in _spans(sentences))
        for split, sentences in splits.items()
    }
    table = pd.DataFrame(counts).fillna(0).astype(int)
    return table.loc[table.sum(axis=1).sort_values(ascending=False).index]


def entity_lengths(splits: Mapping[str, Sequence[Sentence]]) -> pd.DataFrame:
    """Long table of every entity: ``split``, ``type``, ``length`` (tokens)."""
    rows = [
        (split, type_, last - first + 1)
        for split, sentences in splits.items()
        for _, type_, first, last in _spans(sentences)
    ]
    return pd.DataFrame(rows, columns=["split", "type", "length"])


def oov_rates(
    splits: Mapping[str, Sequence[Sentence]],
    vectors: PretrainedVectors | None = None,
    *,
    lowercase: bool = False,
    zero_digits: bool = True,
) -> pd.DataFrame:
    """Out-of-vocabulary rates of every split but ``train``, as fractions.

    Against train: a token is known when its key (lowercased if ``lowercase``, digits zeroed if
    ``zero_digits``, as the model's vocabulary reads it) occurs in the training split. Against
    the pretrained vectors: when the vectors have a row for it (exact, lowercase, digits zeroed,
    as training looks them up). Rates are given over running tokens, over distinct words
    (``types``) and over the tokens inside entities, and ``neither`` counts tokens known to
    neither (the model sees them as the unknown word).
    """
    if "train" not in splits:
        raise ValueError("oov_rates needs a train split")
    vocab = WordVocab.build(
        (s.tokens for s in splits["train"]), lowercase=lowercase, zero_digits=zero_digits
    )
    rows = {}
    for split, sentences in splits.items():
        if split == "train":
            continue
        tokens = [t for s in sentences for t in s.tokens]
        entity_tokens = [s.tokens[i] for s, _, a, b in _spans(sentences) for i in range(a, b + 1)]
        distinct = set(tokens)
        not_train = {w for w in distinct if w not in vocab}
        row = {
            "tokens": len(tokens),
            "oov_train_tokens": _rate(tokens, not_train),
            "oov_train_types": _rate(distinct, not_train),
            "oov_train_entity_tokens": _rate(entity_tokens, not_train),
        }
        if vectors is not None:
            not_vectors = {w for w in distinct if w not in vectors}
            row.update(
                oov_vectors_tokens=_rate(tokens, not_vectors),
                oov_vectors_types=_rate(distinct, not_vectors),
                oov_vectors_entity_tokens=_rate(entity_tokens, not_vectors),
                oov_neither_tokens=_rate(tokens, not_train & not_vectors),
            )
        rows[split] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def _rate(items: Iterable[str], unknown: set[str]) -> float:
    """The fraction of ``items`` that are in ``unknown`` (0 for no items)."""
    items = list(items)
    return sum(w in unknown for w in items) / len(items) if items else 0.0


def top_entities(sentences: Sequence[Sentence], n: int = 10) -> pd.DataFrame:
    """The ``n`` most frequent entity strings of each type: rows are ranks, columns types,
    cells ``text (count)``."""
    counts: dict[str, Counter[str]] = {}
    for s, type_, first, last in _spans(sentences):
        counts.setdefault(type_, Counter())[" ".join(s.tokens[first : last + 1])] += 1
    columns = {
        type_: [f"{text} ({count})" for text, count in counter.most_common(n)]
        for type_, counter in sorted(counts.items())
    }
    table = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})
    table.index = pd.RangeIndex(1, len(table) + 1, name="rank")
    return table.fillna("")


def plot_entity_counts(counts: pd.DataFrame) -> Figure:
    """Entities per type, one bar group per type: absolute counts and share within each split."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    counts.plot.bar(ax=left, rot=0)
    left.set_title("Entities per type")
    left.set_ylabel("entities")
    (counts / counts.sum().replace(0, 1)).plot.bar(ax=right, rot=0, legend=False)
    right.set_title("Share of each split's entities")
    right.set_ylabel("fraction")
    fig.tight_layout()
    return fig


def plot_lengths(splits: Mapping[str, Sequence[Sentence]]) -> Figure:
    """Sentence lengths per split (density histogram) and entity lengths per type (tokens)."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    longest = max((len(s.tokens) for ss in splits.values() for s in ss), default=1)
    bins = np.arange(1, min(longest, 80) + 2) - 0.5
    for split, sentences in splits.items():
        left.hist(
            [min(len(s.tokens), 80) for s in sentences],
            bins=bins,
            density=True,
            histtype="step",
            linewidth=1.5,
            label=split,
        )
    left.set_title("Sentence length (tokens; 80 = 80 or more)")
    left.set_ylabel("fraction of sentences")
    left.legend()
    lengths = entity_lengths(splits)
    if len(lengths):
        table = (
            lengths.assign(length=lengths.length.clip(upper=6))
            .groupby(["length", "type"])
            .size()
            .unstack(fill_value=0)
        )
        (table / table.sum()).plot.bar(ax=right, rot=0)
        right.set_xticks(range(len(table)), [str(i) if i < 6 else "6+" for i in table.index])
    right.set_title("Entity length per type (all splits)")
    right.set_xlabel("tokens")
    right.set_ylabel("fraction of the type's entities")
    fig.tight_layout()
    return fig


def plot_oov(oov: pd.DataFrame) -> Figure:
    """The out-of-vocabulary rates of :func:`oov_rates`, one bar group per split."""
    import matplotlib.pyplot as plt

    rates = oov.drop(columns=["tokens"]).T
    fig, ax = plt.subplots(figsize=(10, 3.8))
    rates.plot.barh(ax=ax)
    ax.set_xlabel("out-of-vocabulary rate")
    ax.set_title("Words unknown to the training split and to the pretrained vectors")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# 02: training runs from the MLflow store

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

#: Metric names that older runs logged under another name.
METRIC_ALIASES = {"train_loss": ("train_loss", "train_loss_epoch")}


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
    ``metric`` (default the model-selection metric, :data:`nerlab.metrics.MONITOR`, best as its
    ``MONITOR_MODE`` says; ``mode`` is ``max`` or ``min`` for another metric), i.e. for
    ``val_f1`` the score of the checkpoint that was tested and saved.

    MLflow's own ``metrics.<metric>`` column is the latest value: the last epoch's.
    """
    from mlflow import MlflowClient

    from nerlab.metrics import MONITOR, MONITOR_MODE

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
            for name in METRIC_ALIASES.get(metric, (metric,)):
                history = sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)
                if history:
                    break
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


# ----------------------------------------------------------------------------------------------
# 03: where a model fails

#: Outcomes of :func:`span_outcomes`, in display order.
OUTCOMES = ("correct", "type", "boundary", "boundary+type", "missed", "spurious")
ERRORS = OUTCOMES[1:]


def tag_sentences(tagger: Tagger, sentences: Sequence[Sentence]) -> tuple[dict, list[list[str]]]:
    """Scores (:class:`nerlab.metrics.EntityF1`, as ``make evaluate``) and predicted IOB2 tags."""
    from nerlab.evaluate import evaluate_sentences

    return evaluate_sentences(tagger, sentences)


def trained_words(vocab: WordVocab) -> set[str]:
    """Keys of the words a model saw in training (count > 0; words added to the vocabulary from
    the pretrained vectors have count 0)."""
    return {w for w, c in zip(vocab.words, vocab.counts, strict=True) if c > 0}


def span_outcomes(
    sentences: Sequence[Sentence],
    predictions: Sequence[Sequence[str]],
    vocab: WordVocab | None = None,
    train_entities: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Every gold span and every predicted span that overlaps none, sorted into one outcome.

    For a gold span: ``correct`` (a predicted span with the same boundaries and type), ``type``
    (same boundaries, other type), ``boundary`` (overlapping predicted spans, one of the same
    type, none with the same boundaries), ``boundary+type`` (overlapping spans, all of other
    types), ``missed`` (no overlapping prediction). A predicted span overlapping no gold span is
    ``spurious``. Columns: ``sentence`` (index), ``first``, ``last``, ``length``, ``text``,
    ``gold``, ``pred`` (type predicted for the span, "" if none), ``outcome``; with ``vocab``,
    ``words_seen`` (``all``/``some``/``none`` of the span's words seen in training); with
    ``train_entities`` (entity strings of the training split), ``entity_seen``.
    """
    seen = trained_words(vocab) if vocab is not None else None
    known_entities = set(train_entities) if train_entities is not None else None
    rows = []
    for index, (sentence, pred_tags) in enumerate(zip(sentences, predictions, strict=True)):
        gold = conlleval_spans(sentence.tags)
        pred = conlleval_spans(pred_tags)
        by_bounds = {(a, b): t for t, a, b in pred}
        for type_, a, b in gold:
            overlapping = [(t, pa, pb) for t, pa, pb in pred if pa <= b and a <= pb]
            if (a, b) in by_bounds:
                predicted = by_bounds[(a, b)]
                outcome = "correct" if predicted == type_ else "type"
            elif overlapping:
                same = [t for t, _, _ in overlapping if t == type_]
                predicted = same[0] if same else overlapping[0][0]
                outcome = "boundary" if same else "boundary+type"
            else:
                predicted, outcome = "", "missed"
            rows.append((index, a, b, type_, predicted, outcome))
        for type_, a, b in pred:
            if not any(ga <= b and a <= gb for _, ga, gb in gold):
                rows.append((index, a, b, "", type_, "spurious"))
    table = pd.DataFrame(rows, columns=["sentence", "first", "last", "gold", "pred", "outcome"])
    table["length"] = table["last"] - table["first"] + 1
    table["text"] = [
        " ".join(sentences[i].tokens[a : b + 1])
        for i, a, b in zip(table.sentence, table["first"], table["last"], strict=True)
    ]
    if seen is not None:
        table["words_seen"] = [
            _seen_share([vocab.key(w) in seen for w in sentences[i].tokens[a : b + 1]])
            for i, a, b in zip(table.sentence, table["first"], table["last"], strict=True)
        ]
    if known_entities is not None:
        table["entity_seen"] = table.text.isin(known_entities)
    table["outcome"] = pd.Categorical(table.outcome, categories=OUTCOMES)
    return table[
        ["sentence", "first", "last", "length", "text", "gold", "pred", "outcome"]
        + [c for c in ("words_seen", "entity_seen") if c in table]
    ]


def _seen_share(flags: list[bool]) -> str:
    return "all" if all(flags) else ("some" if any(flags) else "none")


def entity_strings(sentences: Iterable[Sentence]) -> set[str]:
    """The distinct entity strings (tokens joined by spaces) of a corpus."""
    return {" ".join(s.tokens[a : b + 1]) for s, _, a, b in _spans(sentences)}


def confusion_table(scores: dict) -> pd.DataFrame:
    """The entity-type confusion of ``make evaluate`` (spans with the same boundaries: gold type
    in rows, predicted type in columns, ``-`` for no span there) as a DataFrame."""
    labels = scores["confusion"]["labels"]
    table = pd.DataFrame(scores["confusion"]["matrix"], index=labels, columns=labels)
    table.index.name, table.columns.name = "gold", "predicted"
    return table


def type_confusion(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Gold type (rows) against predicted type (columns) over *overlapping* spans, so that
    boundary errors count too; ``-`` is no span (missed in the last column, spurious in the last
    row)."""
    table = pd.crosstab(outcomes.gold.replace("", "-"), outcomes.pred.replace("", "-"))
    labels = sorted((set(table.index) | set(table.columns)) - {"-"}) + ["-"]
    table = table.reindex(index=labels, columns=labels, fill_value=0)
    table.index.name, table.columns.name = "gold", "predicted"
    return table


def outcome_counts(outcomes: pd.DataFrame, by: str = "gold") -> pd.DataFrame:
    """Outcomes counted per value of ``by`` (``gold`` type, ``length``, ``words_seen``, ...):
    one column per outcome, plus ``recall`` (correct over gold spans) and ``errors``.

    Spurious spans have no gold type; with ``by="gold"`` they are counted by predicted type.
    """
    frame = outcomes.copy()
    if by == "gold":
        frame["gold"] = np.where(frame.outcome == "spurious", frame.pred, frame.gold)
    if by == "length":
        frame["length"] = frame.length.clip(upper=5).map(lambda n: "5+" if n >= 5 else str(n))
    table = pd.crosstab(frame[by], frame.outcome, dropna=False).reindex(
        columns=list(OUTCOMES), fill_value=0
    )
    if by == "words_seen":
        table = table.reindex([v for v in ("all", "some", "none") if v in table.index])
    gold_spans = table.drop(columns=["spurious"]).sum(axis=1)
    table["errors"] = table[list(ERRORS)].sum(axis=1)
    table["recall"] = table["correct"] / gold_spans.replace(0, np.nan)
    return table


def frequent_errors(outcomes: pd.DataFrame, n: int = 15) -> pd.DataFrame:
    """The ``n`` most frequent wrong spans: ``text``, ``gold``, ``pred``, ``outcome``, ``count``."""
    wrong = outcomes[outcomes.outcome != "correct"]
    counts = wrong.groupby(["text", "gold", "pred", "outcome"], observed=True).size()
    return counts.rename("count").sort_values(ascending=False).head(n).reset_index()


def plot_confusion(table: pd.DataFrame, title: str = "Entity types") -> Figure:
    """A confusion table as a heat map (log colour scale) with the counts written in."""
    import matplotlib.pyplot as plt

    matrix = table.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.1 * len(table.columns) + 2.5, 0.9 * len(table) + 1.8))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    ax.set_xticks(range(len(table.columns)), table.columns)
    ax.set_yticks(range(len(table.index)), table.index)
    ax.set_xlabel("predicted type (- : no predicted span)")
    ax.set_ylabel("gold type (- : no gold span)")
    top = matrix.max() if matrix.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            colour = "white" if top and np.log1p(matrix[i, j]) > 0.6 * np.log1p(top) else "black"
            ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", color=colour)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_outcomes(outcomes: pd.DataFrame) -> Figure:
    """Three panels: error kinds per entity type, recall by entity length, recall by whether
    the words were seen in training (when known)."""
    import matplotlib.pyplot as plt

    panels = 3 if "words_seen" in outcomes else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.8))
    by_type = outcome_counts(outcomes, "gold")[list(ERRORS)]
    by_type.plot.bar(ax=axes[0], stacked=True, rot=0)
    axes[0].set_title("Errors per entity type")
    axes[0].set_ylabel("spans")
    axes[0].legend(fontsize=8)
    for ax, by, title in (
        (axes[1], "length", "Recall by entity length (tokens)"),
        (axes[2] if panels == 3 else None, "words_seen", "Recall by words seen in training"),
    ):
        if ax is None:
            continue
        table = outcome_counts(outcomes[outcomes.outcome != "spurious"], by)
        gold_spans = table.drop(columns=["spurious", "errors", "recall"]).sum(axis=1)
        ax.bar(range(len(table)), table.recall.fillna(0), color="tab:green", alpha=0.7)
        ax.set_xticks(range(len(table)), [f"{i}\n({int(n)})" for i, n in gold_spans.items()])
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("recall")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def wrong_sentences(
    sentences: Sequence[Sentence],
    predictions: Sequence[Sequence[str]],
    n: int = 10,
    seed: int = 0,
) -> list[int]:
    """Indices of up to ``n`` sentences (seeded sample, in corpus order) with at least one
    wrong span."""
    wrong = [
        i
        for i, (s, p) in enumerate(zip(sentences, predictions, strict=True))
        if set(conlleval_spans(s.tags)) != set(conlleval_spans(p))
    ]
    return sorted(random.Random(seed).sample(wrong, min(n, len(wrong))))


#: Background colours of the types in :func:`render_sentences` (others: grey).
TYPE_COLOURS = {"PER": "#fcd9a8", "LOC": "#b9e3c6", "ORG": "#b8d4f5", "MISC": "#e3c8f0"}


def render_sentences(
    sentences: Sequence[Sentence],
    predictions: Sequence[Sequence[str]],
    indices: Iterable[int],
) -> str:
    """HTML: for each sentence, a ``gold`` line and a ``pred`` line with spans highlighted by
    type (label in small capitals); spans on one line without an identical span on the other
    are outlined in red."""
    parts = [
        "<div style='font-family: sans-serif; line-height: 2.1'>",
        "<p style='font-size: 85%'>"
        + " ".join(
            f"<span style='background:{c}; padding: 1px 4px'>{t}</span>"
            for t, c in TYPE_COLOURS.items()
        )
        + " &nbsp; <span style='outline: 2px solid #d62728; padding: 1px 4px'>wrong span</span>"
        "</p>",
    ]
    for i in indices:
        s = sentences[i]
        gold = conlleval_spans(s.tags)
        pred = conlleval_spans(predictions[i])
        parts.append(f"<p style='margin: 0.4em 0'><b>#{i}</b><br>")
        parts.append("gold: " + _render_line(s.tokens, gold, set(pred)) + "<br>")
        parts.append("pred: " + _render_line(s.tokens, pred, set(gold)) + "</p>")
    parts.append("</div>")
    return "\n".join(parts)


def _render_line(tokens: Sequence[str], spans: Sequence[tuple], other: set) -> str:
    starts = {a: (t, a, b) for t, a, b in spans}
    out, i = [], 0
    while i < len(tokens):
        if i in starts:
            type_, a, b = starts[i]
            colour = TYPE_COLOURS.get(type_, "#dddddd")
            border = "" if (type_, a, b) in other else "outline: 2px solid #d62728;"
            text = html.escape(" ".join(tokens[a : b + 1]))
            out.append(
                f"<span style='background:{colour}; {border} padding: 1px 4px; "
                f"border-radius: 3px'>{text} <sup style='font-size: 70%'>{type_}</sup></span>"
            )
            i = b + 1
        else:
            out.append(html.escape(tokens[i]))
            i += 1
    return " ".join(out)
