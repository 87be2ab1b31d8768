"""Batches: which sentences go together (samplers) and how they are padded (:func:`make_batch`).

Samplers are length-bucketed for training and length-sorted for evaluation. Batches are NumPy
arrays; the DataModule and the tagger turn them into tensors (:func:`to_tensors` needs torch,
imported only there), so this module stays torch-free.

Both shard batches across processes themselves (``num_replicas``/``rank``), so Lightning's
distributed sampler is switched off for them (``Trainer(use_distributed_sampler=False)``).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

from nerlab.data.encoding import EncodedSplit, FormTable
from nerlab.data.vocab import PAD_ID, UNK_ID


class BucketBatchSampler:
    """Batches of sentences of similar length, in a new random order every epoch.

    Sentences are shuffled, cut into pools of ``pool_factor * batch_size``, each pool sorted by
    length and cut into batches, and the batches shuffled: padding stays small while batches still
    vary. With several replicas every rank gets the same number of batches (the list is padded by
    repeating batches), as DDP needs. Call :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        *,
        seed: int = 0,
        pool_factor: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, found {batch_size}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.pool = max(1, pool_factor) * batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.pool):
            pool = order[start : start + self.pool]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches.extend(
                pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)
            )
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        perm = rng.permutation(len(batches))
        return [batches[i] for i in perm]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches()
        per_rank = self._per_rank(len(batches))
        total = per_rank * self.num_replicas
        if total > len(batches):  # repeat a few batches so every rank has as many
            batches = batches + batches[: total - len(batches)]
        for batch in batches[self.rank : total : self.num_replicas]:
            yield batch.tolist()

    def _per_rank(self, num_batches: int) -> int:
        return math.ceil(num_batches / self.num_replicas)

    def __len__(self) -> int:
        n = len(self.lengths)
        if self.drop_last:
            # full batches come from full pools plus the full batches of the last pool
            full_pools, rest = divmod(n, self.pool)
            num = full_pools * (self.pool // self.batch_size) + rest // self.batch_size
        else:
            full_pools, rest = divmod(n, self.pool)
            num = full_pools * math.ceil(self.pool / self.batch_size) + math.ceil(
                rest / self.batch_size
            )
        return self._per_rank(num)


class SortedBatchSampler:
    """Deterministic batches of sentences sorted by length (longest first), for evaluation.

    Nothing is dropped or repeated: with several replicas each rank takes every
    ``num_replicas``-th sentence of the length order and batches its share, so the union over
    ranks is exactly the split once (metric states summed across ranks equal a single
    process's), the ranks' batch counts differ by at most one, and every rank has a batch as
    long as the split has a sentence per rank. Predictions carry each sentence's index, which
    restores the original order.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        *,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")[rank::num_replicas]
        self.batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield batch.tolist()

    def __len__(self) -> int:
        return len(self.batches)


def make_batch(
    split: EncodedSplit,
    table: FormTable,
    indices: np.ndarray,
    *,
    singleton_unk_prob: float = 0.0,
    seed: int = 0,
    memory: bool = False,
) -> dict[str, np.ndarray]:
    """Gather and pad the sentences ``indices`` of ``split`` into one batch of arrays.

    Keys: ``word_ids (B, L)``, ``form_index (B, L)`` (row of ``char_ids`` for each token),
    ``char_ids (U, W)`` and ``char_lengths (U,)`` for the U distinct forms of the batch,
    ``casing (B, L)`` word-shape classes, ``mask (B, L)`` bool, ``tags (B, L)``, and
    ``indices (B,)``, the sentence numbers in the split.
    With ``singleton_unk_prob`` > 0, training words seen once are replaced by the unknown word
    with that probability (Lample et al.), so the model learns an embedding for it.
    With ``memory``, also ``memory_group (B, L)``: for each capitalized token, the number of its
    group, the tokens of the batch with the same lowercased form in the same document (-1 where
    there is no other), which a document-memory model pools over, and ``document_row (B,)``,
    the document of the batch each sentence belongs to (``document_context`` pools over it).
    """
    indices = np.asarray(indices, dtype=np.int64)
    lengths = split.lengths[indices]  # (B,)
    width = int(lengths.max())
    positions = np.arange(width)
    mask = positions[None, :] < lengths[:, None]  # (B, L)
    token = np.where(mask, split.offsets[indices][:, None] + positions[None, :], 0)  # (B, L)
    forms = split.forms[token]  # (B, L)
    unique, inverse = np.unique(forms[mask], return_inverse=True)
    form_index = np.zeros_like(forms)
    form_index[mask] = inverse
    word_ids = table.word_ids[forms]
    if singleton_unk_prob > 0:
        rng = np.random.default_rng([seed, zlib.crc32(indices.tobytes())])
        drop = table.singleton[forms] & (rng.random(forms.shape) < singleton_unk_prob)
        word_ids = np.where(drop, UNK_ID, word_ids)
    word_ids[~mask] = PAD_ID
    tags = np.where(mask, split.tags[token], 0)
    char_lengths = table.char_lengths[unique]
    char_ids = table.char_ids[unique, : max(1, int(char_lengths.max(initial=1)))]
    extra = {}
    if memory:
        extra["memory_group"] = memory_groups(split, table, indices, forms, mask)
        # which document of the batch each sentence belongs to (0, 1, ...)
        extra["document_row"] = np.unique(split.documents()[indices], return_inverse=True)[1]
    return {
        **extra,
        "word_ids": word_ids,
        "form_index": form_index,
        "char_ids": np.ascontiguousarray(char_ids),
        "char_lengths": char_lengths,
        "casing": np.where(mask, table.casing_ids[forms], 0),
        "mask": mask,
        "tags": tags,
        "indices": indices,
    }


def memory_groups(
    split: EncodedSplit, table: FormTable, indices: np.ndarray, forms: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """``(B, L)`` group numbers: capitalized tokens of one document with one lowercased form
    share a group when the batch has at least two of them; every other position is -1. Groups
    never cross documents."""
    docs = split.documents()[indices]  # (B,)
    candidate = mask & table.capitalized[forms]
    groups = np.full(forms.shape, -1, dtype=np.int64)
    if not candidate.any():
        return groups
    span = int(table.lower_ids.max()) + 1
    keys = (docs[:, None] * span + table.lower_ids[forms])[candidate]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    shared = counts[inverse] > 1
    _, compact = np.unique(inverse[shared], return_inverse=True)
    values = np.full(len(keys), -1, dtype=np.int64)
    values[shared] = compact
    groups[candidate] = values
    return groups


class DocumentBatchSampler:
    """Batches of whole documents: documents packed in order until the next one would pass
    ``batch_size`` sentences (a longer document is a batch of its own), so a document memory
    sees every sentence of a document at once.

    With ``shuffle`` the documents are packed once in a seeded random order (sorted by their
    longest sentence when ``lengths`` are given; without ``shuffle`` ``lengths`` sorts them
    too) and the batches come
    in a new order every epoch (call :meth:`set_epoch`): the number of batches stays the same
    from epoch to epoch, which Lightning relies on (it counts them once to know when an epoch
    ends and validation is due). Several replicas each take every ``num_replicas``-th batch
    (training pads the list so all ranks have as many); in evaluation each replica takes every
    ``num_replicas``-th document instead and batches its own."""

    def __init__(
        self,
        docs: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        lengths: np.ndarray | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, found {batch_size}")
        docs = np.asarray(docs, dtype=np.int64)
        order = np.argsort(docs, kind="stable")
        starts = np.flatnonzero(np.r_[True, docs[order][1:] != docs[order][:-1]])
        documents = np.split(order, starts[1:]) if len(order) else []
        if shuffle:
            rng = np.random.default_rng(seed)
            documents = [documents[i] for i in rng.permutation(len(documents))]
        if lengths is not None and documents:
            # documents whose longest sentences are alike share batches (in random order
            # among equals when shuffled): a batch's BiLSTM steps are its longest sentence, and
            # this packing takes 15% fewer of them than a random one on CoNLL-2003 training;
            # in evaluation (predictions carry their indices) sentences tagged as documents of
            # their own are then batched by length, as SortedBatchSampler does
            lengths = np.asarray(lengths)
            longest = [int(lengths[d].max()) for d in documents]
            documents = [documents[i] for i in np.argsort(longest, kind="stable")]
        # evaluation on several replicas: each takes every num_replicas-th document and packs
        # its own, so every rank has a batch while there is a document per rank, and the union
        # is the split exactly once (metric states summed across ranks equal one process's)
        self.own_documents = not shuffle and num_replicas > 1
        if self.own_documents:
            documents = documents[rank::num_replicas]
        self.batches: list[list[int]] = []
        current: list[int] = []
        for doc in documents:
            if current and len(current) + len(doc) > batch_size:
                self.batches.append(current)
                current = []
            current.extend(doc.tolist())
        if current:
            self.batches.append(current)
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        if self.own_documents:
            yield from self.batches
            return
        batches = self.batches
        if self.shuffle:
            rng = np.random.default_rng((self.seed, self.epoch))
            batches = [batches[i] for i in rng.permutation(len(batches))]
            total = len(self) * self.num_replicas
            batches = batches + batches[: total - len(batches)]
        yield from batches[self.rank :: self.num_replicas][: len(self)]

    def __len__(self) -> int:
        if self.own_documents:
            return len(self.batches)
        if self.shuffle:
            return math.ceil(len(self.batches) / self.num_replicas)
        return len(range(self.rank, len(self.batches), self.num_replicas))


def to_tensors(batch: dict[str, np.ndarray], device=None) -> dict:
    """The arrays of :func:`make_batch` as torch tensors (sharing memory on the CPU)."""
    import torch

    out = {k: torch.from_numpy(v) for k, v in batch.items()}
    if device is not None:
        out = {k: v.to(device, non_blocking=True) for k, v in out.items()}
    return out
