"""What an ensemble of trained models knows that one of them does not: the headroom of
knowledge distillation, measured before building it.

For each split, every model's token marginals (``Tagger.marginals``: exact CRF posteriors) are
averaged, and the average is decoded with the tag scheme's constraints (a Viterbi pass over the
log of the averaged marginals, forbidden transitions excluded). Printed per split:

- each model's entity F1 (its own Viterbi tags, as ``make evaluate`` scores them) and the
  ensemble's: what a student taught by the ensemble could at best reach;
- the share of tokens whose gold tag the ensemble gives a probability under 0.5 and under 0.9:
  on the training split, how much the teacher's soft targets differ from the gold labels a
  student learns anyway.

    .venv/bin/python -m benchmarks.ensemble_headroom MODEL_DIR... [data_dir=DIR] [splits=test,train]

The models must share their tag set (models of one recipe trained with different seeds).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from seqeval.metrics import f1_score

from benchmarks.options import DEFAULTS
from nerlab import Tagger
from nerlab.data.conll import convert_corpus, document_ids, read_conll
from nerlab.data.tag_schemes import allowed_transitions, canonical_scheme, ids_to_iob2
from nerlab.inference import crf_numpy
from nerlab.models.crf import FORBIDDEN_SCORE


def constraint_scores(tags: list[str], scheme: str) -> tuple[np.ndarray, ...]:
    """``(transitions, start, end)``: 0 where the scheme allows a transition, the CRF's
    forbidden score where it does not (START and END are the last two indices)."""
    k = len(tags)
    scores = np.full((k + 2, k + 2), FORBIDDEN_SCORE)
    for i, j in allowed_transitions(canonical_scheme(scheme), tags):
        scores[i, j] = 0.0
    return scores[:k, :k], scores[k, :k], scores[:k, k + 1]


def headroom(model_dirs: list[str], path: Path) -> dict:
    sentences = read_conll(path)
    tokens = [s.tokens for s in sentences]
    docs = document_ids(sentences)
    gold = [s.tags for s in sentences]
    taggers = [Tagger.load(d) for d in model_dirs]
    names = taggers[0].vocabs.tags.tags
    scheme = taggers[0].info["tag_scheme"]
    if any(t.vocabs.tags.tags != names for t in taggers):
        raise SystemExit("the models do not share their tag set")
    singles, total = [], None
    for tagger in taggers:
        singles.append(f1_score(gold, tagger.tag(tokens, documents=docs)))
        marginals = tagger.marginals(tokens, documents=docs)
        total = (
            marginals if total is None else [a + m for a, m in zip(total, marginals, strict=True)]
        )
    averaged = [m / len(taggers) for m in total]
    trans, start, end = constraint_scores(names, scheme)
    predicted = []
    for m in averaged:
        if not len(m):
            predicted.append([])
            continue
        with np.errstate(divide="ignore"):
            logs = np.log(m)[None]
        path_ids = crf_numpy.viterbi(logs, np.ones(logs.shape[:2], bool), trans, start, end)
        predicted.append(ids_to_iob2(path_ids[0].tolist(), names))
    index = {name: i for i, name in enumerate(names)}
    in_scheme = convert_corpus(sentences, scheme)
    p_gold = np.concatenate(
        [
            m[np.arange(len(s.tags)), [index[t] for t in s.tags]]
            for m, s in zip(averaged, in_scheme, strict=True)
            if s.tags
        ]
    )
    return {
        "split": path.stem,
        "tokens": int(p_gold.size),
        "model_f1": [round(100 * f, 2) for f in singles],
        "model_f1_median": round(100 * float(np.median(singles)), 2),
        "ensemble_f1": round(100 * f1_score(gold, predicted), 2),
        "gold_below_0.5": round(float((p_gold < 0.5).mean()), 5),
        "gold_below_0.9": round(float((p_gold < 0.9).mean()), 5),
    }


def main(argv: list[str]) -> None:
    options = {"data_dir": DEFAULTS["data_dir"], "splits": "test,train"}
    models = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key in options:
            options[key] = value
        else:
            models.append(arg)
    if len(models) < 2:
        raise SystemExit(
            "usage: python -m benchmarks.ensemble_headroom MODEL_DIR MODEL_DIR... "
            "[data_dir=DIR] [splits=test,train]"
        )
    for split in options["splits"].split(","):
        print(json.dumps(headroom(models, Path(options["data_dir"]) / f"{split}.txt")))


if __name__ == "__main__":
    main(sys.argv[1:])
