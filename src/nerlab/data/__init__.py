"""The data pipeline: column files -> sentences -> vocabularies -> integer arrays -> batches.

Everything importable from here except :class:`NERDataModule` is pure Python/NumPy (no torch);
the DataModule is imported lazily so that reading files never loads torch.
"""

from nerlab.data.arrays import SequentialTaggingDataset
from nerlab.data.conll import Sentence, iter_conll, read_conll, to_iob2, write_conll
from nerlab.data.tag_schemes import (
    allowed_transitions,
    conlleval_spans,
    convert_tags,
    detect_scheme,
    repair_iob2,
    spans,
)
from nerlab.data.vocab import CharVocab, TagVocab, Vocabularies, WordVocab

__all__ = [
    "CharVocab",
    "NERDataModule",
    "Sentence",
    "SequentialTaggingDataset",
    "TagVocab",
    "Vocabularies",
    "WordVocab",
    "allowed_transitions",
    "conlleval_spans",
    "convert_tags",
    "detect_scheme",
    "iter_conll",
    "read_conll",
    "repair_iob2",
    "spans",
    "to_iob2",
    "write_conll",
]


def __getattr__(name: str):
    if name == "NERDataModule":
        from nerlab.data.datamodule import NERDataModule

        return NERDataModule
    raise AttributeError(f"module 'nerlab.data' has no attribute {name!r}")
