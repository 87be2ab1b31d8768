"""Word embeddings: random, or initialised from pretrained vectors (``nerlab.data.vectors``)."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch import nn

from nerlab.data.vectors import PretrainedVectors
from nerlab.data.vocab import PAD_ID, WordVocab
from nerlab.errors import ConfigError

log = logging.getLogger(__name__)


class WordEmbedding(nn.Module):
    """``nn.Embedding`` with row 0 for padding, optionally initialised from pretrained vectors.

    Rows without a pretrained vector are drawn uniformly from ``±sqrt(3 / dim)`` (Lample's
    initialisation). ``freeze`` keeps the vectors fixed during training.
    """

    def __init__(self, num_words: int, dim: int, freeze: bool = False) -> None:
        super().__init__()
        if num_words < 2 or dim < 1:
            raise ConfigError(
                f"word embeddings need >= 2 words and dim >= 1, found {num_words} and {dim}"
            )
        self.embedding = nn.Embedding(num_words, dim, padding_idx=PAD_ID)
        bound = math.sqrt(3.0 / dim)
        nn.init.uniform_(self.embedding.weight, -bound, bound)
        with torch.no_grad():
            self.embedding.weight[PAD_ID].zero_()
        self.embedding.weight.requires_grad_(not freeze)

    @property
    def dim(self) -> int:
        return self.embedding.embedding_dim

    def load_pretrained(self, vocab: WordVocab, vectors: PretrainedVectors) -> int:
        """Copy the pretrained vector of every vocabulary word that has one; return how many."""
        if vectors.dim != self.dim:
            raise ConfigError(
                f"pretrained vectors {vectors.source} have {vectors.dim} dimensions but "
                f"model.word_embedding_dims is {self.dim}; set them equal"
            )
        found_rows, vocab_ids = [], []
        for idx, word in enumerate(vocab.words):
            if idx == PAD_ID:
                continue
            row = vectors.row(word)
            if row is not None:
                found_rows.append(row)
                vocab_ids.append(idx)
        if found_rows:
            matrix = np.asarray(vectors.matrix[np.asarray(found_rows)], dtype=np.float32)
            with torch.no_grad():
                self.embedding.weight[torch.as_tensor(vocab_ids)] = torch.from_numpy(matrix)
        log.info(
            "%d of %d vocabulary words have a pretrained vector in %s",
            len(vocab_ids),
            len(vocab) - 1,
            vectors.source,
        )
        return len(vocab_ids)

    def forward(self, word_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(word_ids)  # (B, L, D)
