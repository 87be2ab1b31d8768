"""Vocabularies of words, characters and tags, built from the training split only.

They are saved as plain JSON next to the model weights (never pickled) and rebuilt from it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

PAD = "<pad>"
UNK = "<unk>"
PAD_ID = 0
UNK_ID = 1
_DIGITS = re.compile(r"\d")


def zero_digits(word: str) -> str:
    """Replace every digit by 0, as Lample et al. did (``1996-08-22`` -> ``0000-00-00``)."""
    return _DIGITS.sub("0", word)


@dataclass
class WordVocab:
    """Words to ids; id 0 pads, id 1 is the unknown word.

    A word is looked up by its *key*: the word, lowercased if ``lowercase``, with digits
    zeroed if ``zero_digits``. ``counts`` keeps training frequencies (for singleton-to-UNK).
    """

    words: list[str] = field(default_factory=lambda: [PAD, UNK])
    lowercase: bool = False
    zero_digits: bool = True
    counts: list[int] = field(default_factory=lambda: [0, 0])

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}
        self._counts_array = np.zeros(0, dtype=np.int64)

    def counts_array(self) -> np.ndarray:
        """``counts`` as an int64 array (kept until the vocabulary grows)."""
        if len(self._counts_array) != len(self.counts):
            self._counts_array = np.asarray(self.counts, dtype=np.int64)
        return self._counts_array

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        *,
        lowercase: bool = False,
        zero_digits: bool = True,
        min_freq: int = 1,
    ) -> WordVocab:
        vocab = cls(lowercase=lowercase, zero_digits=zero_digits)
        counter: Counter[str] = Counter()
        for tokens in sentences:
            counter.update(map(vocab.key, tokens))
        # most frequent first, ties broken alphabetically so builds are reproducible
        for word, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])):
            if count >= min_freq:
                vocab.add(word, count)
        return vocab

    def key(self, word: str) -> str:
        if self.lowercase:
            word = word.lower()
        if self.zero_digits:
            word = zero_digits(word)
        return word

    def add(self, key: str, count: int = 0) -> int:
        """Add a key (already normalised) and return its id; existing keys keep theirs."""
        idx = self.index.get(key)
        if idx is None:
            idx = self.index[key] = len(self.words)
            self.words.append(key)
            self.counts.append(count)
        return idx

    def extended(self, other: WordVocab) -> WordVocab:
        """A copy of this vocabulary with ``other``'s words added after its own (every id it
        has stays the same) and the counts of ``other`` (the data trained on now)."""
        out = WordVocab(list(self.words), self.lowercase, self.zero_digits, [0] * len(self.words))
        for word, count in zip(other.words[2:], other.counts[2:], strict=True):
            out.counts[out.add(word)] = count
        return out

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return self.key(word) in self.index

    def lookup(self, word: str) -> int:
        return self.index.get(self.key(word), UNK_ID)

    def to_json(self) -> dict:
        return {
            "words": self.words,
            "counts": self.counts,
            "lowercase": self.lowercase,
            "zero_digits": self.zero_digits,
        }

    @classmethod
    def from_json(cls, data: dict) -> WordVocab:
        return cls(
            words=list(data["words"]),
            counts=list(data.get("counts", [0] * len(data["words"]))),
            lowercase=bool(data["lowercase"]),
            zero_digits=bool(data["zero_digits"]),
        )


@dataclass
class CharVocab:
    """Characters to ids; id 0 pads and id 1 stands for any character unseen in training."""

    chars: list[str] = field(default_factory=lambda: [PAD, UNK])

    def __post_init__(self) -> None:
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def build(cls, words: Iterable[str], min_freq: int = 1) -> CharVocab:
        counter: Counter[str] = Counter()
        for word in words:
            counter.update(word)
        vocab = cls()
        for char, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])):
            if count >= min_freq:
                vocab.index[char] = len(vocab.chars)
                vocab.chars.append(char)
        return vocab

    def extended(self, other: CharVocab) -> CharVocab:
        """A copy with ``other``'s characters added after this one's (ids kept)."""
        return CharVocab(list(self.chars) + [c for c in other.chars if c not in self.index])

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, word: str) -> list[int]:
        get = self.index.get
        return [get(c, UNK_ID) for c in word]

    def to_json(self) -> dict:
        return {"chars": self.chars}

    @classmethod
    def from_json(cls, data: dict) -> CharVocab:
        return cls(chars=list(data["chars"]))


@dataclass
class TagVocab:
    """Tags of the training scheme to ids. ``O`` is id 0; the rest sorted by type then prefix."""

    tags: list[str]
    scheme: str

    def __post_init__(self) -> None:
        self.index = {t: i for i, t in enumerate(self.tags)}

    @classmethod
    def build(cls, tag_sequences: Iterable[Sequence[str]], scheme: str) -> TagVocab:
        seen = {t for tags in tag_sequences for t in tags}
        seen.add("O")
        order = "BIES"
        rest = sorted(seen - {"O"}, key=lambda t: (t[2:], order.index(t[0])))
        return cls(tags=["O", *rest], scheme=scheme)

    def extended(self, other: TagVocab) -> TagVocab:
        """A copy with ``other``'s tags (a new entity type) added after this one's (ids kept)."""
        return TagVocab(
            list(self.tags) + [t for t in other.tags if t not in self.index], self.scheme
        )

    @property
    def types(self) -> list[str]:
        """Entity types, sorted (``LOC``, ``MISC``, ``ORG``, ``PER``)."""
        return sorted({t[2:] for t in self.tags if t != "O"})

    def __len__(self) -> int:
        return len(self.tags)

    def to_json(self) -> dict:
        return {"tags": self.tags, "scheme": self.scheme}

    @classmethod
    def from_json(cls, data: dict) -> TagVocab:
        return cls(tags=list(data["tags"]), scheme=data["scheme"])


@dataclass
class Vocabularies:
    """The three vocabularies a model needs, saved together as JSON with the model."""

    words: WordVocab
    chars: CharVocab
    tags: TagVocab

    def to_json(self) -> dict:
        return {
            "words": self.words.to_json(),
            "chars": self.chars.to_json(),
            "tags": self.tags.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict) -> Vocabularies:
        return cls(
            words=WordVocab.from_json(data["words"]),
            chars=CharVocab.from_json(data["chars"]),
            tags=TagVocab.from_json(data["tags"]),
        )
