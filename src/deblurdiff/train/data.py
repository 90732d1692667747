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

Data echoing (a dataset with ``echo`` K > 1, e.g. ``data.options.echo`` of the generated sources:
item ``r*K + u`` is use ``u`` of render ``r``). A random order of items would put the K uses of a
render anywhere in the epoch, too far apart for any cache, so the order is built from renders:
the epoch's random render order is cut into rounds of ``P*B*W`` renders (``P`` = ``window``
batches per rank), each rank takes its ``P*B``, and plays them K times (phase ``u`` fetches use
``u``), reshuffled between phases only among the batches of the same class ``g mod S`` (``S`` =
the loader's workers, at least 2). So the uses of a render are ``S``, ``2S``, ... batches apart:
never in the same or the next batch, always on the same rank and in the same loader worker
(which takes every ``S``-th batch), and at most ``2P - S`` batches apart. ``P`` is the largest
multiple of ``S`` whose live renders, ``P*B`` shared by the workers, fit each one's cache (the
dataset's ``echo_cache``; one that cannot hold a window of ``S`` batches is refused). The order
then also depends on the number of workers: resume with the same.
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
    """Batch sampler of one rank from a given position (see module docstring); ``echo``,
    ``echo_cache`` and ``workers`` (the loader's ``num_workers``) give the echo-aware order."""

    def __init__(self, length: int, batch_size: int, world_size: int, rank: int, seed: int,
                 position: StreamPosition | None = None, echo: int = 1, echo_cache: int | None = None,
                 workers: int = 0):
        if length < batch_size * world_size:
            raise ConfigError(f"the training set has {length} items but one global batch needs "
                              f"{batch_size * world_size} (batch_size {batch_size} x {world_size} processes); "
                              "lower train.batch_size or use a larger data.length")
        self.length, self.batch_size, self.world_size, self.rank, self.seed = length, batch_size, world_size, rank, seed
        self.position = position or StreamPosition()
        self.batches_per_epoch = length // (batch_size * world_size)
        self.echo = echo
        if echo > 1:
            self.stride = workers if workers >= 2 else 2
            renders = length // echo
            smallest = self.stride * batch_size * world_size  # renders of the smallest round
            if renders < smallest:
                raise ConfigError(f"data.options.echo {echo} makes the {length} training items {renders} renders, "
                                  f"but one echo round needs {smallest} ({self.stride} batches of {batch_size} x "
                                  f"{world_size} processes); use a larger data.length or lower echo")
            need = self.stride * batch_size // max(workers, 1)  # live renders per worker at the smallest window
            if echo_cache is not None and echo_cache < need:
                raise ConfigError(f"data.options.echo_cache {echo_cache} is below the {need} renders each loader "
                                  f"worker must keep for echo to reuse them (batch_size {batch_size}, num_workers "
                                  f"{workers}); raise echo_cache to at least {need} or lower train.batch_size")
            fits = (need if echo_cache is None else echo_cache) * max(workers, 1) // (self.stride * batch_size)
            room = renders // smallest
            self.window = self.stride * max(1, min(fits, room))
            self.rounds = renders // (self.window * batch_size * world_size)
            self.batches_per_epoch = self.rounds * echo * self.window

    def _order(self, epoch: int, count: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, 7919, epoch))
        return torch.randperm(count, generator=generator)

    def _echo_round(self, epoch: int, order: torch.Tensor, round_: int) -> list[torch.Tensor]:
        """This rank's ``echo * window`` batches of item indices in round ``round_`` (module docstring)."""
        per_rank = self.window * self.batch_size
        start = (round_ * self.world_size + self.rank) * per_rank
        # [a, c] is batch a*S + c of a phase: class c keeps its renders, which move only between its batches.
        grid = order[start:start + per_rank].view(self.window // self.stride, self.stride, self.batch_size)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, 7927, epoch, round_, self.rank))
        batches = []
        for use in range(self.echo):
            if use:
                grid = grid.clone()
                for c in range(self.stride):
                    members = grid[:, c].reshape(-1)
                    grid[:, c] = members[torch.randperm(len(members), generator=generator)].view_as(grid[:, c])
            batches += list(grid.reshape(self.window, self.batch_size) * self.echo + use)
        return batches

    def epoch_batches(self):
        """Index lists of the rest of the current epoch, advancing ``position`` as they are taken."""
        epoch = self.position.epoch
        global_batch = self.batch_size * self.world_size
        order = self._order(epoch, self.length // self.echo)  # of renders when echoing
        round_, batches = None, []
        for k in range(self.position.batch, self.batches_per_epoch):
            if self.echo > 1:
                if k // (self.echo * self.window) != round_:
                    round_ = k // (self.echo * self.window)
                    batches = self._echo_round(epoch, order, round_)
                indices = batches[k % (self.echo * self.window)].tolist()
            else:
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
