"""Choosing what to label next: unlabelled texts ranked by how unsure a model is of them.

Every score comes from the CRF's exact sequence probabilities (``Tagger.tag_with_uncertainty``:
a two-best Viterbi pass and the forward algorithm). A text made of several sentences is tagged
as one document by a document model, and its labelling is right only if every sentence's is:
``P(best) = prod_s P_s(best)``, and its second-best labelling differs from the best in the one
sentence where that costs least: ``P(second) = P(best) * max_s P_s(second) / P_s(best)``.

Strategies (the task's ``score``: higher means less sure, chosen first):

* ``least_confidence``: ``1 - P(best)`` (the default);
* ``margin``: ``1 - (P(best) - P(second))``, a small gap between the two best labellings;
* ``mnlp``: ``-log P(best) / tokens``, least confidence per token (Shen et al. 2018), which
  does not favour long texts;
* ``random``: a seeded random order, the baseline (the score is then ``1 - P(best)``).

Near-duplicates are skipped: a text whose normalised form (lowercased, digits as 0) was chosen
already, or whose set of word bigrams overlaps a chosen one's by at least ``dedup`` (Jaccard).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

STRATEGIES = ("least_confidence", "margin", "mnlp", "random")


@dataclass
class Unit:
    """One text to rank: its string, its sentences as tokens with character offsets, and where
    it came from (``line``: 0-based line or document number of the input)."""

    text: str
    sentences: list[list[tuple[str, int, int]]]
    line: int
    tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = sum(len(s) for s in self.sentences)


def units_from_texts(texts: Sequence[str], split_sentences: bool) -> list[Unit]:
    """Raw texts, tokenized like ``Tagger.predict``; with ``split_sentences`` (a document
    model) each text's sentences are cut after ``.``, ``!`` and ``?``."""
    from nerlab.data.tokenizer import tokenize
    from nerlab.inference.tagger import SENTENCE_ENDS

    units = []
    for i, text in enumerate(texts):
        tokens = tokenize(text)
        sentences, current = [], []
        for token in tokens:
            current.append(token)
            if split_sentences and token[0] in SENTENCE_ENDS:
                sentences.append(current)
                current = []
        if current or not sentences:
            sentences.append(current)
        units.append(Unit(text, sentences, i))
    return units


def units_from_sentences(token_lists: Sequence[Sequence[str]], docs: Sequence[int]) -> list[Unit]:
    """Tokenized sentences grouped into units by ``docs`` (consecutive equal numbers); a unit's
    text is its tokens joined by spaces, its sentences by newlines."""
    units: list[Unit] = []
    previous = None
    for tokens, doc in zip(token_lists, docs, strict=True):
        if doc != previous or not units:
            units.append(Unit("", [], int(doc)))
            previous = doc
        unit = units[-1]
        start = len(unit.text) + (1 if unit.text else 0)
        offsets, position = [], start
        for token in tokens:
            offsets.append((token, position, position + len(token)))
            position += len(token) + 1
        unit.text = (unit.text + "\n" if unit.text else "") + " ".join(tokens)
        unit.sentences.append(offsets)
    for unit in units:
        unit.__post_init__()
    return units


def score_units(tagger, units: Sequence[Unit], documents: bool) -> tuple[list, np.ndarray]:
    """Each unit's entities (``{"text", "label", "start", "end", "confidence"}``) and the
    log-probabilities of its best and second-best labelling, ``(N, 2)``."""
    from nerlab.inference.tagger import entities

    sentences = [[t for t, _, _ in s] for u in units for s in u.sentences]
    owner = [i for i, u in enumerate(units) for _ in u.sentences]
    tags, confidence, paths = tagger.tag_with_uncertainty(
        sentences, documents=owner if documents else None
    )
    found: list[list[dict]] = [[] for _ in units]
    best = np.zeros(len(units))
    gain = np.full(len(units), -np.inf)  # max over sentences of log P2_s - log P1_s
    k = 0
    for i, unit in enumerate(units):
        for sentence in unit.sentences:
            found[i] += entities(
                tags[k],
                [t for t, _, _ in sentence],
                text=unit.text,
                offsets=[(a, b) for _, a, b in sentence],
                confidence=confidence[k],
            )
            best[i] += paths[k, 0]
            gain[i] = max(gain[i], paths[k, 1] - paths[k, 0])
            k += 1
    return found, np.stack([best, best + gain], axis=1)


def uncertainty(strategy: str, log_paths: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """The score of each unit under ``strategy`` (higher: less sure)."""
    p_best, p_second = np.exp(log_paths[:, 0]), np.exp(log_paths[:, 1])
    if strategy in ("least_confidence", "random"):
        return 1.0 - p_best
    if strategy == "margin":
        return 1.0 - (p_best - p_second)
    if strategy == "mnlp":
        return -log_paths[:, 0] / np.maximum(tokens, 1)
    raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, found {strategy!r}")


_DIGITS = re.compile(r"\d")


def _normal(text: str) -> str:
    return " ".join(_DIGITS.sub("0", text.lower()).split())


def _bigrams(text: str) -> frozenset:
    words = text.split()
    return frozenset(zip(words, words[1:], strict=False)) if len(words) > 1 else frozenset(words)


def select(
    units: Sequence[Unit],
    scores: np.ndarray,
    n: int,
    strategy: str,
    *,
    seed: int = 0,
    dedup: float = 0.8,
) -> list[int]:
    """Indices of the ``n`` units to label, in order: by ``scores`` (highest first; ties by
    input order) or, for ``random``, a seeded shuffle; near-duplicates of a chosen unit skipped
    (``dedup`` >= 1 keeps all but exact normalised duplicates)."""
    if strategy == "random":
        order = np.random.default_rng(seed).permutation(len(units))
    else:
        order = np.lexsort((np.arange(len(units)), -scores))
    chosen: list[int] = []
    seen: set[str] = set()
    shingles: list[frozenset] = []
    for i in order.tolist():
        if len(chosen) >= n:
            break
        normal = _normal(units[i].text)
        if not normal or normal in seen:
            continue
        grams = _bigrams(normal)
        if dedup < 1 and any(
            len(grams & other) >= dedup * len(grams | other) for other in shingles if other
        ):
            continue
        chosen.append(i)
        seen.add(normal)
        shingles.append(grams)
    return chosen


def label_studio_result(
    found: list[dict], from_name: str = "label", to_name: str = "text"
) -> list[dict]:
    """Entities as Label Studio ``labels`` results, each span's probability as its ``score``."""
    return [
        {
            "id": f"e{j}",
            "from_name": from_name,
            "to_name": to_name,
            "type": "labels",
            "value": {
                "start": e["start"],
                "end": e["end"],
                "text": e["text"],
                "labels": [e["label"]],
            },
            "score": e["confidence"],
        }
        for j, e in enumerate(found)
    ]


def label_studio_task(
    unit: Unit, found: list[dict], score: float, meta: dict, model_version: str
) -> dict:
    """A Label Studio task with the model's pre-annotation (``predictions``), each span's
    probability as its ``score`` and ``score`` as the prediction's (Label Studio sorts and
    filters tasks by it)."""
    result = label_studio_result(found)
    return {
        "data": {"text": unit.text},
        "predictions": [{"model_version": model_version, "score": score, "result": result}],
        "meta": meta,
    }


def doccano_task(unit: Unit, found: list[dict], score: float, meta: dict) -> dict:
    """A doccano JSONL line with the pre-annotation and the scores (doccano keeps other keys as
    metadata)."""
    return {
        "text": unit.text,
        "label": [[e["start"], e["end"], e["label"]] for e in found],
        "score": score,
        "span_scores": [e["confidence"] for e in found],
        "meta": meta,
    }


def finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else float(value)
