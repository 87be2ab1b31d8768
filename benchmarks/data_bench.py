"""Data pipeline speed: parsing, vocabularies and integer encoding of CoNLL-2003.

Two figures, each the best of ``repeats`` runs in this process:

* ``train_seconds``: ``train.txt`` alone, step by step as the DataModule does it: read_conll,
  to_iob2, the word/char/tag vocabularies, the IOBES conversion and encode_split plus the form
  table's arrays (goal: under 3 s for CoNLL-2003's 14,041 sentences);
* ``setup_seconds``: ``NERDataModule(dir=...).setup()``, all three splits, without pretrained
  vectors.
"""

from __future__ import annotations

import time
from pathlib import Path

GOAL_TRAIN_SECONDS = 3.0


def encode_train_file(path: Path, tag_scheme: str = "iobes") -> dict[str, int]:
    """Parse, build the vocabularies of and encode one training file; return its sizes."""
    from nerlab.data import CharVocab, TagVocab, WordVocab, read_conll, to_iob2
    from nerlab.data.conll import convert_corpus
    from nerlab.data.encoding import FormTable, encode_split

    sentences, _, _ = to_iob2(read_conll(path), path)
    words = WordVocab.build(s.tokens for s in sentences)
    chars = CharVocab.build(w for s in sentences for w in s.tokens)
    converted = convert_corpus(sentences, tag_scheme)
    tags = TagVocab.build((s.tags for s in converted), tag_scheme)
    table = FormTable(words, chars)
    split = encode_split(converted, table, tags, gold_iob2=[s.tags for s in sentences])
    table.freeze()
    return {"sentences": len(split), "tokens": split.num_tokens, "words": len(words)}


def _best(run, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - t0)
    return best, result


def run(data_dir: str | Path, repeats: int = 3) -> dict:
    from nerlab.data.datamodule import NERDataModule

    data_dir = Path(data_dir)
    train_seconds, sizes = _best(lambda: encode_train_file(data_dir / "train.txt"), repeats)

    def setup():
        dm = NERDataModule(dir=str(data_dir), download=False)
        dm.setup()
        return {name: len(split) for name, split in dm.splits.items()}

    setup_seconds, split_sizes = _best(setup, repeats)
    return {
        "train_seconds": train_seconds,
        "train_sentences": sizes["sentences"],
        "train_tokens": sizes["tokens"],
        "train_words": sizes["words"],
        "train_sentences_per_s": sizes["sentences"] / train_seconds,
        "train_goal_seconds": GOAL_TRAIN_SECONDS,
        "train_goal_met": train_seconds < GOAL_TRAIN_SECONDS,
        "setup_seconds": setup_seconds,
        "setup_sentences": split_sizes,
        "repeats": repeats,
    }
