"""Batch samplers: length-bucketed for training, length-sorted for evaluation.

Both shard batches across processes themselves (``num_replicas``/``rank``), so Lightning's
distributed sampler is switched off for them (``Trainer(use_distributed_sampler=False)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np


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
    ``num_replicas``-th batch, so the union over ranks is exactly the split once, and metric
    states summed across ranks equal a single process's. Predictions carry each sentence's
    index, which restores the original order.
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
        order = np.argsort(-lengths, kind="stable")
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        self.batches = batches[rank::num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield batch.tolist()

    def __len__(self) -> int:
        return len(self.batches)


def restore_order(indices: Sequence[int], values: Sequence) -> list:
    """Put per-sentence ``values`` produced in batch order back into corpus order."""
    out: list = [None] * len(values)
    for i, v in zip(indices, values, strict=True):
        out[i] = v
    return out
