"""The README's results table, computed from the MLflow store.

Each row is one ``experiment=`` recipe (``conf/experiment/conll03_*.yaml``), swept over its
seeds with ``make sweep experiment=<recipe>``; each recipe logs to the MLflow experiment of its
own name. This module reads those runs back and summarises test entity F1 over seeds: median,
mean, sample standard deviation, min and max, plus the median F1 per entity type.

    make results                          # the table of every recipe below, as Markdown
    nerlab-results experiments=conll03_default json=results.json

When a seed was run more than once, its most recent finished run counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nerlab.analysis.runs import search_runs

#: The rows of the README's table, in order: recipe name -> what it changes.
RECIPES: dict[str, str] = {
    "conll03_default": "default: document memory + second BiLSTM, 22 epochs, cosine, EMA weights",
    "conll03_sentence": "sentence-level: GloVe 6B 50d + char CNN, BiLSTM 100, CRF, IOBES",
    "conll03_char_lstm": "char BiLSTM instead of char CNN",
    "conll03_no_char": "no character features",
    "conll03_softmax": "softmax per token instead of the CRF",
    "conll03_bio": "BIO (IOB2) tags instead of IOBES",
    "conll03_random_embeddings": "random word embeddings instead of GloVe",
    "conll03_document_memory": "document memory: other mentions of a word in its document",
    "conll03_document_encoder": "the default with 15 epochs",
    "conll03_document_memory_cosine": "document memory, 15 epochs, cosine learning rate",
    "conll03_cosine": "sentence-level, 15 epochs, cosine learning rate",
    "conll03_word_dropout": "the default with word dropout 0.05",
    "conll03_char_dropout": "the default with dropout 0.5 on the character embeddings",
    "conll03_document_context": "the default with the mean state of the document's other sentences",
    "conll03_casing": "the default with a 10-dimensional casing (word shape) embedding",
    "conll03_batch32": "the default with batches of 32 sentences and learning rate 0.002",
    "conll03_mean_pooling": "the mean of the other mentions (no attention), batches of 32",
    "conll03_swa": "the default with SWA from epoch 15 instead of the EMA",
    "conll03_no_averaging": "the default without weight averaging",
}
ENTITY_TYPES = ("LOC", "MISC", "ORG", "PER")


def seed_runs(tracking_uri: str, experiment: str) -> pd.DataFrame:
    """The finished runs of ``experiment`` that have a test F1, one per seed (the newest)."""
    try:
        runs = search_runs(tracking_uri, experiment, finished_only=True)
    except ValueError as err:
        if not str(err).startswith("no experiment"):
            raise
        return pd.DataFrame()  # a recipe not run yet: its row says 0 runs
    if runs.empty or "metrics.test_f1" not in runs:
        return pd.DataFrame()
    runs = runs.dropna(subset=["metrics.test_f1"])
    # search_runs is newest first: keep the first run of each seed
    return runs.drop_duplicates(subset=["params.seed"], keep="first").reset_index(drop=True)


def summarize(tracking_uri: str, experiments: Sequence[str]) -> pd.DataFrame:
    """One row per experiment: seeds, test F1 statistics, per-type median F1, median epochs
    and wall minutes."""
    rows = []
    for name in experiments:
        runs = seed_runs(tracking_uri, name)
        f1 = runs["metrics.test_f1"].astype(float).to_numpy() if len(runs) else np.array([])
        row = {
            "recipe": name,
            "seeds": ",".join(sorted(runs["params.seed"].astype(str), key=int))
            if len(runs)
            else "",
            "runs": len(f1),
            "median": float(np.median(f1)) if len(f1) else np.nan,
            "mean": float(np.mean(f1)) if len(f1) else np.nan,
            "std": float(np.std(f1, ddof=1)) if len(f1) > 1 else np.nan,
            "min": float(np.min(f1)) if len(f1) else np.nan,
            "max": float(np.max(f1)) if len(f1) else np.nan,
        }
        for etype in ENTITY_TYPES:
            column = f"metrics.test_f1_{etype}"
            values = runs[column].dropna().astype(float) if column in runs else []
            row[etype] = float(np.median(values)) if len(values) else np.nan
        # epochs run: the last "epoch" logged is the test's, after training, when the trainer's
        # epoch counter already counts every epoch run; and wall minutes of the whole run
        epochs = runs["metrics.epoch"].dropna().astype(float) if "metrics.epoch" in runs else []
        row["epochs"] = float(np.median(epochs)) if len(epochs) else np.nan
        if len(runs) and {"start_time", "end_time"} <= set(runs.columns):
            minutes = (runs["end_time"] - runs["start_time"]).dt.total_seconds() / 60.0
            row["wall_min"] = float(minutes.median())
        else:
            row["wall_min"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    """The table as the README shows it (F1 in percent, two decimals; std in points)."""
    head = (
        "| recipe (`make sweep experiment=...`) | runs | median | mean | std | min | max | "
        + " | ".join(ENTITY_TYPES)
        + " | epochs | minutes |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]

    def pct(value: float) -> str:
        return "n/a" if np.isnan(value) else f"{100 * value:.2f}"

    def num(value: float, fmt: str) -> str:
        return "n/a" if np.isnan(value) else format(value, fmt)

    for row in table.to_dict("records"):
        cells = [f"`{row['recipe']}`", str(row["runs"])]
        cells += [pct(row[k]) for k in ("median", "mean", "std", "min", "max")]
        cells += [pct(row[k]) for k in ENTITY_TYPES]
        cells += [num(row["epochs"], ".0f"), num(row["wall_min"], ".1f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
