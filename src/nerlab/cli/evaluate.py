"""`make evaluate` / `nerlab-evaluate`: entity scores of a saved model on a labelled file.

    nerlab-evaluate model_dir=DIR test_file=FILE [tag_column=N] [batch_size=256]
                    [predictions=OUT.conll]

The last stdout line is JSON: ``f1``, ``precision``, ``recall`` and ``per_type``
(``{TYPE: {precision, recall, f1, support}}``); a readable report goes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nerlab.cli.options import load_tagger, main_of
from nerlab.data.conll import read_conll, to_iob2, write_conll
from nerlab.errors import NerlabError
from nerlab.training.metrics import classification_report, score_tagger


def evaluate(options: dict[str, str]) -> int:
    if "test_file" not in options:
        raise NerlabError("give test_file=FILE")
    tagger = load_tagger({"batch_size": "256", **options})
    default_column = (tagger.info.get("data") or {}).get("tag_column", -1)
    tag_column = int(options.get("tag_column", default_column))
    path = Path(options["test_file"])
    sentences, _, _ = to_iob2(read_conll(path, tag_column), path)
    scores, predictions = score_tagger(tagger, sentences)
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


main = main_of("nerlab-evaluate", evaluate)


if __name__ == "__main__":
    raise SystemExit(main())
