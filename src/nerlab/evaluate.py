"""`make evaluate` / `nerlab-evaluate`: entity scores of a saved model on a labelled file.

    nerlab-evaluate model_dir=DIR test_file=FILE [tag_column=N] [batch_size=256]
                    [predictions=OUT.conll]

The last stdout line is JSON: ``f1``, ``precision``, ``recall`` and ``per_type``
(``{TYPE: {precision, recall, f1, support}}``); a readable report goes to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from nerlab.commands import load_tagger, parse_options, run
from nerlab.data.conll import Sentence, read_conll, to_iob2, write_conll
from nerlab.errors import NerlabError
from nerlab.inference import Tagger
from nerlab.metrics import EntityF1, classification_report


def evaluate_sentences(
    tagger: Tagger, sentences: Sequence[Sentence]
) -> tuple[dict, list[list[str]]]:
    """Scores (as :meth:`EntityF1.compute`) and the predicted IOB2 tags of gold sentences.

    Types scored: the model's plus any that only occur in the gold tags (counted as missed).
    """
    predictions = tagger.tag([s.tokens for s in sentences])
    types = set(tagger.entity_types)
    types.update(t[2:] for s in sentences for t in s.tags if t != "O")
    metric = EntityF1(sorted(types))
    metric.update(predictions, [s.tags for s in sentences])
    return metric.compute(), predictions


def evaluate(options: dict[str, str]) -> int:
    if "test_file" not in options:
        raise NerlabError("give test_file=FILE")
    tagger = load_tagger({"batch_size": "256", **options})
    default_column = (tagger.info.get("data") or {}).get("tag_column", -1)
    tag_column = int(options.get("tag_column", default_column))
    path = Path(options["test_file"])
    sentences, _, _ = to_iob2(read_conll(path, tag_column), path)
    scores, predictions = evaluate_sentences(tagger, sentences)
    if "predictions" in options:
        write_conll(
            options["predictions"],
            (
                list(zip(s.tokens, s.tags, p, strict=True))
                for s, p in zip(sentences, predictions, strict=True)
            ),
        )
    print(classification_report(scores), file=sys.stderr)
    print(json.dumps(scores))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return run("nerlab-evaluate", lambda: evaluate(parse_options(args)))


__all__ = ["evaluate_sentences", "main"]
