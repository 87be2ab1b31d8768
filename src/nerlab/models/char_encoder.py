"""Character features of each word: a char CNN or a char BiLSTM.

Both take the padded character ids of the *distinct* forms of a batch, ``char_ids (U, W)`` with
``char_lengths (U,)``, and return one vector per form ``(U, D)``; the tagger then gathers them
back to token positions, so each distinct word is encoded once per batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from nerlab.data.vocab import PAD_ID


class CharCNN(nn.Module):
    """n-gram convolutions over character embeddings, max-pooled over the word (Ma & Hovy)."""

    def __init__(
        self,
        num_chars: int,
        character_embedding_dims: int = 25,
        char_features_dims: int = 50,
        kernel_sizes: tuple[int, ...] = (3,),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, character_embedding_dims, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.kernel_sizes = tuple(kernel_sizes)
        self.convs = nn.ModuleList(
            nn.Conv1d(character_embedding_dims, char_features_dims, k, padding=k // 2)
            for k in self.kernel_sizes
        )
        self.output_dim = char_features_dims * len(self.kernel_sizes)

    def forward(self, char_ids: torch.Tensor, char_lengths: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embedding(char_ids)).transpose(1, 2)  # (U, C, W)
        width = char_ids.shape[1]
        valid = torch.arange(width, device=char_ids.device)[None, :] < char_lengths[:, None]
        pooled = []
        for conv in self.convs:
            h = conv(x)[:, :, :width]  # (U, F, W); even kernels give one extra column
            h = h.masked_fill(~valid[:, None, :], float("-inf"))
            pooled.append(h.max(dim=2).values)  # (U, F)
        return torch.cat(pooled, dim=1)


class CharLSTM(nn.Module):
    """A BiLSTM over characters; the word vector is the final state of both directions."""

    def __init__(
        self,
        num_chars: int,
        character_embedding_dims: int = 25,
        char_features_lstm_dims: int = 25,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, character_embedding_dims, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            character_embedding_dims, char_features_lstm_dims, batch_first=True, bidirectional=True
        )
        self.output_dim = 2 * char_features_lstm_dims

    def forward(self, char_ids: torch.Tensor, char_lengths: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embedding(char_ids))  # (U, W, C)
        packed = pack_padded_sequence(
            x, char_lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        _, (h, _) = self.lstm(packed)  # h: (2, U, H), forward then backward direction
        return torch.cat([h[0], h[1]], dim=1)  # (U, 2H)


CHAR_ENCODERS = ("cnn", "lstm", "none")


def build_char_encoder(config) -> nn.Module | None:
    """The char encoder a :class:`~nerlab.models.bilstm_crf.TaggerConfig` (already checked) names,
    or None for ``char="none"``."""
    if config.char == "cnn":
        return CharCNN(
            config.num_chars,
            config.character_embedding_dims,
            config.char_features_dims,
            tuple(config.char_kernel_sizes),
            config.char_dropout,
        )
    if config.char == "lstm":
        return CharLSTM(
            config.num_chars,
            config.character_embedding_dims,
            config.char_features_lstm_dims,
            config.char_dropout,
        )
    return None
