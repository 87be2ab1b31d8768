"""Notebook 03 (``03-error-analysis``): where a model fails.

:func:`span_outcomes` sorts every gold and predicted span into correct, type, boundary,
boundary+type, missed or spurious; breakdowns by type, length and whether the words were seen in
training follow, and :func:`render_sentences` highlights gold and predicted spans as HTML.
"""

from __future__ import annotations

import html
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nerlab.data.conll import Sentence
from nerlab.data.tag_schemes import conlleval_spans
from nerlab.data.vocab import WordVocab
from nerlab.files import REPO_ROOT

__all__ = [
    "latest_model_dir",
    "tag_sentences",
    "trained_words",
    "span_outcomes",
    "entity_strings",
    "confusion_table",
    "type_confusion",
    "outcome_counts",
    "frequent_errors",
    "plot_confusion",
    "plot_outcomes",
    "wrong_sentences",
    "render_sentences",
    "OUTCOMES",
    "ERRORS",
    "TYPE_COLOURS",
]

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from nerlab.inference import Tagger


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


#: Outcomes of :func:`span_outcomes`, in display order.
OUTCOMES = ("correct", "type", "boundary", "boundary+type", "missed", "spurious")
ERRORS = OUTCOMES[1:]


def tag_sentences(tagger: Tagger, sentences: Sequence[Sentence]) -> tuple[dict, list[list[str]]]:
    """Scores (:class:`nerlab.training.metrics.EntityF1`, as ``make evaluate``) and predicted
    IOB2 tags."""
    from nerlab.training.metrics import score_tagger

    return score_tagger(tagger, sentences)


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
    return {" ".join(s.tokens[a : b + 1]) for s in sentences for _, a, b in conlleval_spans(s.tags)}


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


def mention_consistency(
    token_lists: Sequence[Sequence[str]], tags: Sequence[Sequence[str]], documents: Sequence[int]
) -> dict:
    """How often a name mentioned more than once in a document gets different labels:
    ``{"repeated", "inconsistent", "rate"}`` over (document, exact mention text) pairs with at
    least two mentions (IOB2 ``tags``, read as conlleval reads them)."""
    labels: dict[tuple[int, str], set[str]] = {}
    counts: dict[tuple[int, str], int] = {}
    for tokens, seq, doc in zip(token_lists, tags, documents, strict=True):
        for label, first, last in conlleval_spans(seq):
            key = (doc, " ".join(tokens[first : last + 1]))
            labels.setdefault(key, set()).add(label)
            counts[key] = counts.get(key, 0) + 1
    repeated = [k for k, n in counts.items() if n > 1]
    inconsistent = sum(len(labels[k]) > 1 for k in repeated)
    return {
        "repeated": len(repeated),
        "inconsistent": inconsistent,
        "rate": inconsistent / len(repeated) if repeated else 0.0,
    }
