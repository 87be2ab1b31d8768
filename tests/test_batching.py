"""Samplers, dynamic padding, distinct-form batching and order restoration."""

from __future__ import annotations

import numpy as np
import pytest

from nerlab.data.batching import BucketBatchSampler, SortedBatchSampler


def test_bucket_sampler_covers_every_sentence_once_per_epoch_and_reshuffles():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=1000)
    sampler = BucketBatchSampler(lengths, 32, seed=3, pool_factor=4)
    epochs = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(1000))
        epochs.append(batches)
    assert epochs[0] != epochs[1]
    # bucketing: the padding of bucketed batches is far below that of random batches
    padded = sum(len(b) * lengths[b].max() for b in epochs[0])
    random_batches = np.array_split(rng.permutation(1000), len(epochs[0]))
    padded_random = sum(len(b) * lengths[b].max() for b in random_batches)
    assert padded < 0.8 * padded_random


def test_bucket_sampler_gives_every_replica_the_same_number_of_batches():
    lengths = np.arange(1, 101)
    shards = [list(BucketBatchSampler(lengths, 8, num_replicas=3, rank=r)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1
    assert len(shards[0]) == len(BucketBatchSampler(lengths, 8, num_replicas=3, rank=0))
    assert set(i for s in shards for b in s for i in b) == set(range(100))


def test_sorted_sampler_shards_without_repeats():
    lengths = np.array([3, 9, 1, 7, 7, 2, 5])
    single = list(SortedBatchSampler(lengths, 3))
    assert [lengths[b].tolist() for b in single] == [[9, 7, 7], [5, 3, 2], [1]]
    shards = [list(SortedBatchSampler(lengths, 2, num_replicas=2, rank=r)) for r in range(2)]
    flat = [i for s in shards for b in s for i in b]
    assert sorted(flat) == list(range(7))
    # one batch of 256 in one process; two ranks still each get a batch of their share
    ranks = [list(SortedBatchSampler(lengths, 256, num_replicas=2, rank=r)) for r in range(2)]
    assert [len(r) for r in ranks] == [1, 1]
    assert sorted(i for r in ranks for b in r for i in b) == list(range(7))


def test_invalid_batch_size():
    with pytest.raises(ValueError, match="batch_size must be positive, found 0"):
        BucketBatchSampler([1, 2], 0)
