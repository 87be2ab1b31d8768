"""Fixed-size arrays for users who want them: NLP Architect's ``SequentialTaggingDataset``.

Unlike the original, a word and its characters are always kept aligned: row ``i`` of the char
matrix holds the characters of word ``i`` of the same sentence, whatever is truncated.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from nerlab.data.conll import Sentence, read_conll, to_iob2
from nerlab.data.vocab import PAD_ID, CharVocab, TagVocab, WordVocab


class SequentialTaggingDataset:
    """Word-id, char-id and tag-id matrices of a train and a test file.

    ``train_set`` and ``test_set`` are ``(words (N, sentence_length), chars (N, sentence_length,
    word_length), tags (N, sentence_length))`` int64 arrays, padded with 0 after the sentence
    and after each word; sentences longer than ``sentence_length`` keep their first
    ``sentence_length`` words and words keep their first ``word_length`` characters.
    Vocabularies come from the training file only; tags are IOB2.
    """

    def __init__(
        self,
        train_file: str | os.PathLike,
        test_file: str | os.PathLike,
        sentence_length: int = 30,
        word_length: int = 20,
        tag_column: int = -1,
        *,
        lowercase: bool = False,
        zero_digits: bool = False,
        min_freq: int = 1,
    ) -> None:
        if sentence_length < 1 or word_length < 1:
            raise ValueError(
                f"sentence_length and word_length must be positive, found "
                f"{sentence_length} and {word_length}"
            )
        self.sentence_length = sentence_length
        self.word_length = word_length
        train, _, _ = to_iob2(read_conll(train_file, tag_column), train_file)
        test, _, _ = to_iob2(read_conll(test_file, tag_column), test_file)
        self.word_vocab = WordVocab.build(
            (s.tokens for s in train),
            lowercase=lowercase,
            zero_digits=zero_digits,
            min_freq=min_freq,
        )
        self.char_vocab = CharVocab.build(w for s in train for w in s.tokens)
        self.tag_vocab = TagVocab.build((s.tags for s in train), "iob2")
        self.train_set = self._arrays(train)
        self.test_set = self._arrays(test)

    @property
    def y_labels(self) -> dict[str, int]:
        return dict(self.tag_vocab.index)

    @property
    def word_vocab_size(self) -> int:
        return len(self.word_vocab)

    @property
    def char_vocab_size(self) -> int:
        return len(self.char_vocab)

    @property
    def label_vocab_size(self) -> int:
        return len(self.tag_vocab)

    def _arrays(self, sentences: Sequence[Sentence]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, length, width = len(sentences), self.sentence_length, self.word_length
        words = np.full((n, length), PAD_ID, dtype=np.int64)
        chars = np.full((n, length, width), PAD_ID, dtype=np.int64)
        tags = np.zeros((n, length), dtype=np.int64)
        lookup, encode, tag_index = (
            self.word_vocab.lookup,
            self.char_vocab.encode,
            self.tag_vocab.index,
        )
        for i, (tokens, tag_seq) in enumerate(sentences):
            # one loop over the kept words fills all three arrays, so they cannot disagree
            for j, (token, tag) in enumerate(zip(tokens[:length], tag_seq[:length], strict=True)):
                words[i, j] = lookup(token)
                ids = encode(token[:width])
                chars[i, j, : len(ids)] = ids
                tags[i, j] = tag_index.get(tag, 0)
        return words, chars, tags
