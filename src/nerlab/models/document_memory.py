"""What the other mentions of a word in its document say: the pooling of a document memory.

A batch of whole documents marks each capitalized token that shares its lowercased form with
another token of its document with a group number (``memory_group``, ``(B, L)``, -1 elsewhere).
Both poolings give each such position a summary of the encoder states of the other members of
its group and a flag saying it has one; the tagger concatenates both to the token's own state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sum_by_index(like: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``like`` plus each row of ``values`` added into row ``index[i]``: ``index_add`` written
    as ``scatter_add``. Exported, ``index_add`` becomes ONNX ScatterND, which onnxruntime's CPU
    kernel runs on several threads that lose updates to a repeated index (onnxruntime issue
    18048: 8.3 off for 20,000 rows into 50 on 2 threads here), so the same input gave different
    tags from run to run; ``scatter_add`` becomes ScatterElements, which adds in order. In
    torch on the CPU both gave the same sums, bit for bit (3,000 rows of 200 into 300).

    The index is widened by its own length, not by ``values``'s: an exported graph fixes the
    length of an LSTM's output to the example's, and ``index`` comes from an input."""
    return like.scatter_add(0, index[:, None].expand(-1, values.shape[1]), values)


def mean_of_mentions(h: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each position, the mean of ``h`` over the other positions of its group, and a flag
    saying it has a group: ``(B, L, D)`` and ``(B, L, 1)``; zeros where ``groups`` is -1.

    Sums go through :func:`sum_by_index` and come back through an embedding lookup, whose backward
    adds in a fixed order (training stays deterministic on the CPU). The result takes its
    ``(B, L)`` from ``groups``, an input of the network: ``torch.onnx.export`` fixes the length
    of an LSTM's output to the example's, and a reshape to ``h``'s shape made the exported
    graph refuse every other length."""
    flat = h.flatten(0, 1)  # (B*L, D); no data-dependent shape (and so exportable)
    index = groups.flatten()
    weight = (index >= 0).to(h.dtype)
    safe = index.clamp(min=0)
    sums = sum_by_index(torch.zeros_like(flat), safe, flat * weight[:, None])
    counts = sum_by_index(torch.zeros_like(flat[:, :1]), safe, weight[:, None])
    others = (F.embedding(safe, sums) - flat) / (F.embedding(safe, counts) - 1).clamp(min=1)
    memory = others * weight[:, None]
    return memory.view(*groups.shape, -1), (groups >= 0).to(h.dtype).unsqueeze(-1)


def mean_of_other_sentences(
    h: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each sentence, the mean of ``h`` over the tokens of the *other* sentences of its
    document (``rows (B,)``: the document of each sentence), given to each of its tokens, and a
    flag saying there are any: ``(B, L, D)`` and ``(B, L, 1)``; zeros at padding.

    What the document is about (a sports results page, a market report) without reading it
    again. As in :func:`mean_of_mentions`, sums go through :func:`sum_by_index` over the flattened
    tokens and come back through embedding lookups, and the result takes its ``(B, L)`` from
    ``mask``, an input of the network (an exported graph keeps a dynamic length)."""
    flat = h.flatten(0, 1)  # (B*L, D)
    weight = mask.flatten().to(h.dtype)  # (B*L,)
    batch = mask.shape[0]
    sentence = torch.arange(batch, device=h.device).unsqueeze(1).expand_as(mask).flatten()
    document = rows[sentence]  # (B*L,)
    weighted = flat * weight[:, None]
    # sums in rows 0..B-1 of tensors shaped like ``flat`` (B*L >= B rows), as in
    # mean_of_mentions: sizes taken from the encoder's output keep the export's length dynamic
    sums, counts = torch.zeros_like(flat), torch.zeros_like(weight)[:, None]
    own = sum_by_index(sums, sentence, weighted)  # row b: sentence b's sum
    own_count = sum_by_index(counts, sentence, weight[:, None])
    docs = sum_by_index(sums, document, weighted)  # row d: document d's (d < B)
    doc_count = sum_by_index(counts, document, weight[:, None])
    other_count = F.embedding(document, doc_count) - F.embedding(sentence, own_count)  # (B*L, 1)
    others = (F.embedding(document, docs) - F.embedding(sentence, own)) / other_count.clamp(min=1)
    flag = (other_count > 0).to(h.dtype) * weight[:, None]
    return (others * weight[:, None]).view(*mask.shape, -1), flag.view(*mask.shape, 1)


class MentionAttention(nn.Module):
    """For each position with a group, an attention-weighted mean of ``h`` over the other
    positions of its group (scaled dot product of learned queries and keys), and the flag of
    :func:`mean_of_mentions`: ``(B, L, D)`` and ``(B, L, 1)``; zeros where ``groups`` is -1.

    Only the grouped positions (capitalized repeated words) take part, so the score matrix is
    M x M for the M grouped positions of the batch, computed ``chunk`` query rows at a time
    (a long document tagged at once stays in bounded memory). Rows are gathered through an
    embedding lookup, whose backward adds in a fixed order (deterministic on the CPU)."""

    def __init__(self, dim: int, attention_dim: int, chunk: int = 2048) -> None:
        super().__init__()
        self.query = nn.Linear(dim, attention_dim)
        self.key = nn.Linear(dim, attention_dim, bias=False)
        self.scale = attention_dim**-0.5
        self.chunk = chunk

    def forward(self, h: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.compiler.is_exporting():
            return self.exportable(h, groups)
        flat = h.flatten(0, 1)  # (N, D)
        index = groups.flatten()  # (N,)
        flag = (index >= 0).to(h.dtype)
        rows = torch.nonzero(index >= 0).squeeze(1)  # (M,)
        memory = torch.zeros_like(flat)
        if not rows.numel():
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                # zeros through the one-pass form, so that the query and key take part in the
                # graph: DDP refuses a step that leaves parameters unused. One process keeps
                # them out (no gradient, so the optimizer skips them), as the runs of
                # docs/results.md were trained: a zero gradient would still move NAdam.
                return self.exportable(h, groups)
            return memory.view_as(h), flag.view_as(groups).unsqueeze(-1)
        members, queries, keys, member_groups = self._members(flat, index, rows)
        pooled = [
            self._pool(members, queries, keys, member_groups, start, start + self.chunk)
            for start in range(0, rows.numel(), self.chunk)
        ]
        # under autocast the products may come back in a lower precision than ``h``
        memory = sum_by_index(memory, rows, torch.cat(pooled).to(memory.dtype))
        return memory.view_as(h), flag.view_as(groups).unsqueeze(-1)

    def _members(self, flat: torch.Tensor, index: torch.Tensor, rows: torch.Tensor):
        """The grouped positions' states ``(M, D)``, queries and keys ``(M, A)``, groups."""
        members = F.embedding(rows, flat)  # (M, D)
        return members, self.query(members) * self.scale, self.key(members), index[rows]

    @staticmethod
    def _pool(members, queries, keys, member_groups, start: int, stop) -> torch.Tensor:
        """Query rows ``start:stop``: the softmax of their scores over the other members of
        their group, times the members' states, ``(C, D)``."""
        eye = torch.arange(members.shape[0], device=members.device)
        scores = queries[start:stop] @ keys.T  # (C, M)
        allowed = (member_groups[start:stop, None] == member_groups[None, :]) & (
            eye[start:stop, None] != eye[None, :]
        )
        return scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ members

    def exportable(
        self, h: torch.Tensor, groups: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` in one pass: all M grouped positions' M x M scores at once, with no
        branch on M and no loop over chunks, so ``torch.export`` can trace it with M a
        data-dependent size (ONNX NonZero); ``make export`` uses it. Equal to :meth:`forward`
        up to rounding (a test checks); it costs M x M memory, M the grouped positions of a
        batch (a few thousand for the longest CoNLL-2003 document)."""
        flat = h.flatten(0, 1)  # (N, D)
        index = groups.flatten()  # (N,)
        rows = torch.nonzero(index >= 0).squeeze(1)  # (M,)
        members, queries, keys, member_groups = self._members(flat, index, rows)
        # all M query rows at once (every member has another: no empty row)
        pooled = self._pool(members, queries, keys, member_groups, 0, rows.shape[0])
        pooled = pooled.to(flat.dtype)
        memory = sum_by_index(torch.zeros_like(flat), rows, pooled)
        # shaped by ``groups``, an input, not by ``h``: the exported graph fixes the length of
        # an LSTM's output to the example's (as in mean_of_mentions)
        flag = (index >= 0).to(h.dtype)
        return memory.view(*groups.shape, -1), flag.view_as(groups).unsqueeze(-1)
