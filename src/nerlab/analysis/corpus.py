"""Notebook 01 (``01-data-exploration``): a data set at a glance.

:func:`read_splits` / :func:`splits_from_config` read the splits as training does and check
their tag scheme; :func:`corpus_summary`, :func:`entity_counts`, :func:`entity_lengths`,
:func:`oov_rates` and :func:`top_entities` return DataFrames; the ``plot_*`` functions return
matplotlib Figures. Scores and rates are fractions in [0, 1].
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nerlab.data.conll import Sentence, read_conll, to_iob2
from nerlab.data.tag_schemes import conlleval_spans
from nerlab.data.vocab import WordVocab

__all__ = [
    "read_splits",
    "splits_from_config",
    "corpus_summary",
    "entity_counts",
    "entity_lengths",
    "oov_rates",
    "top_entities",
    "plot_entity_counts",
    "plot_lengths",
    "plot_oov",
    "SPLIT_KEYS",
]

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure
    from omegaconf import DictConfig

    from nerlab.data.vectors import PretrainedVectors

#: Split names and the data config keys naming their files.
SPLIT_KEYS = {"train": "train_file", "val": "val_file", "test": "test_file"}


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
    folder = data.dir if data.dir else data.get("default_dir")
    return read_splits(
        folder, files, tag_column=int(data.tag_column), on_invalid=str(data.on_invalid)
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
