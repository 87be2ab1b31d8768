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

import numpy as np
import torch

from nerlab.data.batching import SortedBatchSampler
from nerlab.data.conll import Sentence, read_conll, to_iob2, write_conll
from nerlab.data.datamodule import Vocabularies, make_batch
from nerlab.data.encoding import FormTable, encode_split
from nerlab.errors import NerlabError
from nerlab.lightning_module import ids_to_iob2
from nerlab.metrics import EntityF1, classification_report
from nerlab.models.tagger import BiLSTMTagger


@torch.inference_mode()
def tag_sentences(
    net: BiLSTMTagger,
    vocabs: Vocabularies,
    token_lists: Sequence[Sequence[str]],
    *,
    word_length: int | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> list[list[str]]:
    """IOB2 tags for each token list, batched by length, returned in input order."""
    if not token_lists:
        return []
    table = FormTable(vocabs.words, vocabs.chars, word_length)
    split = encode_split([(list(t), []) for t in token_lists], table, None)
    table.freeze()
    non_empty = np.flatnonzero(split.lengths > 0)
    out: list[list[str]] = [[] for _ in token_lists]
    lengths = split.lengths[non_empty]
    for batch_pos in SortedBatchSampler(lengths, batch_size):
        indices = non_empty[np.asarray(batch_pos)]
        batch = make_batch(split, table, indices)
        batch = {k: v.to(device) for k, v in batch.items()}
        mask = batch["mask"]
        ids = net.decode(net(batch), mask).tolist()
        for row, idx in enumerate(indices.tolist()):
            n = int(split.lengths[idx])
            out[idx] = ids_to_iob2(ids[row][:n], vocabs.tags.tags)
    return out


def evaluate_sentences(
    net: BiLSTMTagger,
    vocabs: Vocabularies,
    info: dict,
    sentences: Sequence[Sentence],
    *,
    batch_size: int = 256,
) -> tuple[dict, list[list[str]]]:
    """Scores (as :meth:`EntityF1.compute`) and the predicted IOB2 tags of gold sentences."""
    predictions = tag_sentences(
        net,
        vocabs,
        [s.tokens for s in sentences],
        word_length=(info.get("data") or {}).get("word_length"),
        batch_size=batch_size,
    )
    types = set(info.get("entity_types") or vocabs.tags.types)
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
    from nerlab.saving import load_model

    try:
        options = _parse(sys.argv[1:] if argv is None else argv)
        if "model_dir" not in options and "model_info_path" not in options:
            raise NerlabError("give model_dir=DIR (or model_info_path=FILE)")
        if "test_file" not in options:
            raise NerlabError("give test_file=FILE")
        net, vocabs, info = load_model(
            options.get("model_dir"),
            model_path=options.get("model_path"),
            model_info_path=options.get("model_info_path"),
        )
        tag_column = int(options.get("tag_column", (info.get("data") or {}).get("tag_column", -1)))
        path = Path(options["test_file"])
        sentences, _, _ = to_iob2(read_conll(path, tag_column), path)
        scores, predictions = evaluate_sentences(
            net, vocabs, info, sentences, batch_size=int(options.get("batch_size", 256))
        )
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


__all__ = ["evaluate_sentences", "main", "tag_sentences"]
