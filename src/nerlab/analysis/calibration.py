"""How far a model's entity probabilities can be trusted: calibration of span probabilities.

Every predicted entity carries the probability the CRF gives exactly that labelled span
(:meth:`nerlab.inference.Tagger.predict`). A model is calibrated when, of the spans it gives
probability about p, a fraction about p is right (matches a gold span in type and boundaries).
:func:`calibration` bins the predicted spans by probability (equal-width bins) and returns the
expected calibration error (ECE, Naeini et al. 2015: the bins' |accuracy - mean probability|
weighted by their share of spans) with each bin's figures; :func:`reliability_plot` draws them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nerlab.data.conll import Sentence
from nerlab.data.tag_schemes import conlleval_spans
from nerlab.files import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from nerlab.inference import Tagger


def scored_predictions(
    tagger: Tagger, sentences: Sequence[Sentence], documents=None
) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    """Tag gold IOB2 ``sentences`` (``documents``: as in ``Tagger.tag``); return the predicted
    tags, and for every predicted span its probability and whether it is right (exactly a gold
    span)."""
    tags, confidence = tagger.tag_with_confidence([s.tokens for s in sentences], documents)
    probabilities, correct = [], []
    for sentence, spans in zip(sentences, confidence, strict=True):
        gold = set(conlleval_spans(sentence.tags))
        for span, p in spans.items():
            probabilities.append(min(1.0, max(0.0, p)))
            correct.append(span in gold)
    return tags, np.asarray(probabilities, dtype=np.float64), np.asarray(correct, dtype=bool)


def calibration(probabilities: Sequence[float], correct: Sequence[bool], bins: int = 10) -> dict:
    """``{"ece", "spans", "bins": [{"lower", "upper", "spans", "confidence", "accuracy"}]}``:
    the expected calibration error over ``bins`` equal-width probability bins (the last one
    closed at 1.0), and each non-empty bin's mean probability and accuracy."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, found {bins}")
    p = np.asarray(probabilities, dtype=np.float64)
    right = np.asarray(correct, dtype=np.float64)
    if p.shape != right.shape:
        raise ValueError(f"{p.size} probabilities for {right.size} outcomes")
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        members = index == b
        n = int(members.sum())
        if n == 0:
            continue
        conf, acc = float(p[members].mean()), float(right[members].mean())
        ece += n / p.size * abs(acc - conf)
        rows.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "spans": n,
                "confidence": conf,
                "accuracy": acc,
            }
        )
    return {"ece": ece, "spans": int(p.size), "bins": rows}


def reliability_plot(result: dict, path: str | os.PathLike, title: str = "") -> Path:
    """Draw :func:`calibration`'s bins (accuracy against mean probability, bar widths the bins,
    the diagonal for a calibrated model, span counts below) as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["bins"]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    lower = [r["lower"] for r in rows]
    width = [r["upper"] - r["lower"] for r in rows]
    top.bar(
        lower,
        [r["accuracy"] for r in rows],
        width=width,
        align="edge",
        edgecolor="black",
        color="#4c72b0",
        label="accuracy",
    )
    top.plot([0, 1], [0, 1], "--", color="gray", label="calibrated")
    top.plot(
        [r["confidence"] for r in rows],
        [r["accuracy"] for r in rows],
        "o",
        color="#dd8452",
        label="mean probability",
    )
    top.set_ylabel("fraction of spans right")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.legend(loc="upper left")
    top.set_title(title or f"ECE {result['ece']:.4f} over {result['spans']} spans")
    bottom.bar(
        lower,
        [r["spans"] for r in rows],
        width=width,
        align="edge",
        edgecolor="black",
        color="#8c8c8c",
    )
    bottom.set_yscale("log")
    bottom.set_ylabel("spans")
    bottom.set_xlabel("span probability")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
