"""Turning sentences into integer arrays once, so that no epoch re-tokenizes anything.

Every distinct token string of a corpus (a *form*) is stored once in a shared :class:`FormTable`
with its word id and its character ids; a sentence is then just a run of form ids. A batch
gathers word ids with one indexing operation, and the character encoder runs once per distinct
form of the batch instead of once per occurrence. NumPy only: no torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nerlab.data.vocab import PAD_ID, UNK_ID, CharVocab, TagVocab, WordVocab

CASINGS = ("<pad>", "numeric", "mainly_numeric", "lower", "upper", "title", "has_digit", "other")


def casing(word: str) -> int:
    """Word-shape class of a token (Reimers & Gurevych 2017), an index into ``CASINGS``."""
    digits = sum(c.isdigit() for c in word)
    if word.isdigit():
        return 1
    if digits / max(len(word), 1) > 0.5:
        return 2
    if word.islower():
        return 3
    if word.isupper():
        return 4
    if word[:1].isupper():
        return 5
    if digits:
        return 6
    return 7


@dataclass
class EncodedSplit:
    """One split as flat arrays: sentence ``i`` is ``forms[offsets[i]:offsets[i + 1]]``."""

    forms: np.ndarray  # (T,) int64 form ids of every token, sentences concatenated
    tags: np.ndarray  # (T,) int64 tag ids in the training scheme (0 for tags unseen in training)
    offsets: np.ndarray  # (N + 1,) int64
    gold: list[list[str]] | None  # IOB2 gold tags per sentence, for scoring (None if unlabelled)
    docs: np.ndarray | None = None  # (N,) int64 document of each sentence (None: each its own)

    def documents(self) -> np.ndarray:
        """The document of each sentence (``arange(N)`` when none were given)."""
        if self.docs is None:
            return np.arange(len(self), dtype=np.int64)
        return self.docs

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])


class FormTable:
    """Distinct token strings with their word ids and padded character ids.

    ``word_length`` caps the characters kept per form (the word itself is never dropped).
    Call :meth:`freeze` after adding every split to get the arrays.
    """

    def __init__(self, words: WordVocab, chars: CharVocab, word_length: int | None = None) -> None:
        self.words = words
        self.chars = chars
        self.word_length = word_length
        self.index: dict[str, int] = {}
        self.strings: list[str] = []
        self._frozen_size = -1

    def ids(self, tokens: Sequence[str]) -> list[int]:
        index = self.index
        out = []
        for token in tokens:
            idx = index.get(token)
            if idx is None:
                idx = index[token] = len(self.strings)
                self.strings.append(token)
            out.append(idx)
        return out

    def freeze(self) -> None:
        """Build ``word_ids``, ``char_ids (F, W)``, ``char_lengths``, ``casing_ids``,
        ``singleton``."""
        if self._frozen_size == len(self.strings):
            return
        strings = self.strings
        lookup = self.words.lookup
        self.word_ids = np.fromiter((lookup(s) for s in strings), np.int64, len(strings))
        counts = self.words.counts_array()
        self.singleton = (counts[self.word_ids] == 1) & (self.word_ids > UNK_ID)
        encode = self.chars.encode
        cap = self.word_length
        encoded = [encode(s[:cap] if cap else s) for s in strings]
        lengths = np.fromiter((len(c) for c in encoded), np.int64, len(encoded))
        width = max(1, int(lengths.max(initial=1)))
        char_ids = np.full((len(encoded), width), PAD_ID, dtype=np.int64)
        flat = np.fromiter((c for e in encoded for c in e), np.int64, int(lengths.sum()))
        rows = np.repeat(np.arange(len(encoded)), lengths)
        cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        char_ids[rows, cols] = flat
        self.char_ids = char_ids
        self.char_lengths = lengths
        self.casing_ids = np.fromiter((casing(s) for s in strings), np.int64, len(strings))
        lower: dict[str, int] = {}
        self.lower_ids = np.fromiter(
            (lower.setdefault(s.lower(), len(lower)) for s in strings), np.int64, len(strings)
        )
        # the words a document memory links: capitalized or upper-case ones (names, mostly)
        self.capitalized = np.isin(
            self.casing_ids, (CASINGS.index("upper"), CASINGS.index("title"))
        )
        self._frozen_size = len(strings)

    def __len__(self) -> int:
        return len(self.strings)


def encode_split(
    sentences: Sequence[tuple[Sequence[str], Sequence[str]]],
    table: FormTable,
    tag_vocab: TagVocab | None,
    gold_iob2: list[list[str]] | None = None,
    docs: Sequence[int] | None = None,
) -> EncodedSplit:
    """Encode sentences (tokens, tags in the training scheme) against a shared form table.

    Tags unknown to ``tag_vocab`` (a type never seen in training) are encoded as ``O`` for the
    loss; scoring uses ``gold_iob2``, so such entities still count as missed.
    """
    lengths = np.fromiter((len(s[0]) for s in sentences), np.int64, len(sentences))
    offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = table.ids
    forms = np.fromiter(
        (f for tokens, _ in sentences for f in ids(tokens)), np.int64, int(offsets[-1])
    )
    if tag_vocab is not None:
        get = tag_vocab.index.get
        tags = np.fromiter(
            (get(t, 0) for _, tag_seq in sentences for t in tag_seq), np.int64, int(offsets[-1])
        )
    else:
        tags = np.zeros(int(offsets[-1]), dtype=np.int64)
    doc_ids = None if docs is None else np.asarray(docs, dtype=np.int64)
    return EncodedSplit(forms=forms, tags=tags, offsets=offsets, gold=gold_iob2, docs=doc_ids)


def unknown_id_rate(split: EncodedSplit, table: FormTable) -> float:
    """Fraction of tokens whose word id is the unknown word."""
    if split.num_tokens == 0:
        return 0.0
    return float((table.word_ids[split.forms] == UNK_ID).mean())
