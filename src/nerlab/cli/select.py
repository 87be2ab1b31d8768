"""`make select` / `nerlab-select`: the texts a model is least sure of, ready to label.

    nerlab-select model_dir=DIR input=FILE n=N output=FILE
                  [strategy=least_confidence|margin|mnlp|random] [format=label-studio|doccano]
                  [dedup=0.8] [seed=0] [input_format=text|conll] [batch_size=256]

``input``: raw text (one text a line; a document model reads each line as a document) or CoNLL
columns (a document model's ``-DOCSTART-`` documents are kept whole, else each sentence is a
text). ``output``: JSONL that Label Studio imports (tasks with the model's pre-annotations:
``predictions[0].result`` spans with their probability as ``score``, and the task's ``score``)
or doccano JSONL (``text``, ``label``, ``score``, ``span_scores``); both carry ``meta``
(``strategy``, ``rank``, ``line``: the input line or document, ``p_best``, ``p_second``). The
strategies and the near-duplicate guard: :mod:`nerlab.analysis.selection`. The output is
written under a temporary name and renamed at the end; the last stdout line is JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from nerlab.cli.options import load_tagger, main_of
from nerlab.errors import NerlabError
from nerlab.files import atomic_path

CONLL_SUFFIXES = (".conll", ".bio", ".iob", ".tsv")


def _read_units(path: Path, in_format: str, tagger):
    from nerlab.analysis.selection import units_from_sentences, units_from_texts
    from nerlab.data.conll import document_ids, read_conll

    if in_format == "conll":
        sentences = read_conll(path, labelled=False)
        setting = (tagger.info.get("data") or {}).get("documents") or "auto"
        docs = document_ids(sentences, setting if tagger.uses_documents else "sentence")
        return units_from_sentences([s.tokens for s in sentences], docs)
    try:
        texts = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise NerlabError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return units_from_texts(texts, split_sentences=tagger.uses_documents)


def select_command(options: dict[str, str]) -> int:
    from nerlab.analysis.selection import (
        STRATEGIES,
        doccano_task,
        label_studio_task,
        score_units,
        select,
        uncertainty,
    )

    for key in ("input", "output", "n"):
        if key not in options:
            raise NerlabError(f"give model_dir=DIR input=FILE n=N output=FILE; {key} is missing")
    source, target = Path(options["input"]), Path(options["output"])
    if not source.is_file():
        raise NerlabError(f"{source}: no such file")
    try:
        n = int(options["n"])
    except ValueError:
        n = 0
    if n < 1:
        raise NerlabError(f"n must be a positive whole number, found {options['n']!r}")
    strategy = options.get("strategy", "least_confidence")
    if strategy not in STRATEGIES:
        raise NerlabError(f"strategy must be one of {', '.join(STRATEGIES)}, found {strategy!r}")
    out_format = options.get("format", "label-studio")
    if out_format not in ("label-studio", "doccano"):
        raise NerlabError(f"format must be label-studio or doccano, found {out_format!r}")
    dedup = float(options.get("dedup", 0.8))
    in_format = options.get("input_format", "auto")
    if in_format == "auto":
        in_format = "conll" if source.suffix in CONLL_SUFFIXES else "text"
    if in_format not in ("text", "conll"):
        raise NerlabError(f"input_format must be text or conll, found {in_format!r}")
    tagger = load_tagger({"batch_size": "256", **options})
    if not tagger.has_crf:
        raise NerlabError(f"{options.get('model_dir')}: selection needs a CRF model")
    started = time.perf_counter()
    units = _read_units(source, in_format, tagger)
    if not any(u.tokens for u in units):
        raise NerlabError(f"{source}: no texts to select from (the file is empty)")
    found, log_paths = score_units(tagger, units, tagger.uses_documents)
    import numpy as np

    scores = uncertainty(strategy, log_paths, np.asarray([u.tokens for u in units]))
    chosen = select(units, scores, n, strategy, seed=int(options.get("seed", 0)), dedup=dedup)
    version = f"nerlab:{tagger.info.get('mlflow_run_id') or Path(tagger.info['_path']).parent}"
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as out:
        for rank, i in enumerate(chosen):
            p_best, p_second = (float(np.exp(v)) for v in log_paths[i])
            meta = {
                "strategy": strategy,
                "rank": rank,
                "line": units[i].line,
                "score": float(scores[i]),
                "p_best": p_best,
                "p_second": p_second,
            }
            if out_format == "label-studio":
                # Label Studio's prediction score is the model's confidence: sorting its tasks
                # by it (ascending) puts the least sure first
                task = label_studio_task(units[i], found[i], p_best, meta, version)
            else:
                task = doccano_task(units[i], found[i], float(scores[i]), meta)
            out.write(json.dumps(task, ensure_ascii=False) + "\n")
    summary = {
        "input": str(source),
        "output": str(target),
        "texts": len(units),
        "selected": len(chosen),
        "strategy": strategy,
        "seconds": round(time.perf_counter() - started, 3),
    }
    print(json.dumps(summary))
    return 0


main = main_of(
    "nerlab-select",
    select_command,
    allowed=(
        "model_dir",
        "input",
        "n",
        "output",
        "strategy",
        "format",
        "dedup",
        "seed",
        "input_format",
        "batch_size",
        "backend",
        "quantize",
        "device",
        "tracking_uri",
    ),
)


if __name__ == "__main__":
    raise SystemExit(main())
