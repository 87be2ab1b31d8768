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


def _parse(args: list[str]) -> dict[str, str]:
    options = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq:
            raise NerlabError(f"expected key=value arguments, found {arg!r}")
        options[key.lstrip("-")] = value
    return options


def main(argv: list[str] | None = None) -> int:
    try:
        options = _parse(sys.argv[1:] if argv is None else argv)
        if "model_dir" not in options and "model_info_path" not in options:
            raise NerlabError("give model_dir=DIR (or model_info_path=FILE)")
        if "test_file" not in options:
            raise NerlabError("give test_file=FILE")
        tagger = Tagger.load(
            options.get("model_dir"),
            model_path=options.get("model_path"),
            model_info_path=options.get("model_info_path"),
            batch_size=int(options.get("batch_size", 256)),
        )
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
    except (NerlabError, ValueError) as err:
        print(f"nerlab-evaluate: error: {err}", file=sys.stderr)
        return 2
    print(classification_report(scores), file=sys.stderr)
    print(json.dumps(scores))
    return 0


__all__ = ["evaluate_sentences", "main"]
