"""Resumable, sharded batches with items that are a pure function of (seed, epoch, index).

Why not ``accelerator.prepare(dataloader)``: exact resume after a crash needs the batch order
and every random augmentation to depend only on how far training got, not on the history of
worker processes or of the main process's RNG. Here

* the order of epoch ``e`` is ``randperm(len, seed(e))``; global batch ``k`` of that epoch is
  ``perm[k*W*B:(k+1)*W*B]`` and rank ``r`` takes its ``r``-th slice of ``B`` (ranks see
  disjoint shards, the last incomplete global batch is dropped);
* each item is fetched with python/numpy/torch seeded from ``(seed, epoch, index)``, so a
  dataset that augments with the global RNGs gives the same item in any worker, on any rank,
  before or after a resume;
* the position is two integers ``(epoch, batch)`` stored in the checkpoint.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError


def derive_seed(*keys: int) -> int:
    """A 63-bit seed mixed from integers (numpy's SeedSequence: well-spread, platform-independent)."""
    state = np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys] + [len(keys)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class SeededItems(Dataset):
    """Wraps a dataset: ``self[(index, seed)]`` seeds the global RNGs, then returns ``dataset[index]``."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key
        seed_everything(seed)
        return self.dataset[index]


@dataclass
class StreamPosition:
    epoch: int = 0
    batch: int = 0


class ShardedBatches:
    """Batch sampler of one rank from a given position (see module docstring)."""

    def __init__(self, length: int, batch_size: int, world_size: int, rank: int, seed: int,
                 position: StreamPosition | None = None):
        if length < batch_size * world_size:
            raise ConfigError(f"the training set has {length} items but one global batch needs "
                              f"{batch_size * world_size} (batch_size {batch_size} x {world_size} processes); "
                              "lower train.batch_size or use a larger data.length")
        self.length, self.batch_size, self.world_size, self.rank, self.seed = length, batch_size, world_size, rank, seed
        self.position = position or StreamPosition()
        self.batches_per_epoch = length // (batch_size * world_size)

    def _order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, 7919, epoch))
        return torch.randperm(self.length, generator=generator)

    def epoch_batches(self):
        """Index lists of the rest of the current epoch, advancing ``position`` as they are taken."""
        epoch = self.position.epoch
        order = self._order(epoch)
        global_batch = self.batch_size * self.world_size
        for k in range(self.position.batch, self.batches_per_epoch):
            start = k * global_batch + self.rank * self.batch_size
            indices = order[start:start + self.batch_size].tolist()
            yield [(i, derive_seed(self.seed, 104729, epoch, i)) for i in indices]


def batch_stream(dataset: Dataset, sampler: ShardedBatches, num_workers: int = 0, pin_memory: bool = False):
    """Endless iterator of collated batches; ``sampler.position`` always names the next batch."""
    seeded = SeededItems(dataset)
    while True:
        loader = DataLoader(seeded, batch_sampler=sampler.epoch_batches(), num_workers=num_workers,
                            pin_memory=pin_memory)
        for batch in loader:
            sampler.position.batch += 1
            yield batch
        sampler.position = StreamPosition(sampler.position.epoch + 1, 0)
