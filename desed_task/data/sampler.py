"""Batch sampler mixing several datasets of a ConcatDataset in fixed proportions, DDP-aware."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from desed_task.utils.errors import BadInput


class MultiSetBatchSampler(Sampler[list[int]]):
    """Yield index lists into `ConcatDataset(sets)`: each batch is `[set0 part | set1 part | ...]`
    with `batch_sizes[i]` items of set i (e.g. [synthetic 12 | weak 12 | unlabeled 24]).

    The epoch ends when the set with the fewest batches is exhausted: len = min_i(n_i // batch_sizes[i])
    where n_i is this rank's share of set i. Under DDP (`num_replicas`/`rank` given, or taken from an
    initialised torch.distributed) every rank gets a disjoint, equally sized share of each set.
    Shuffling is seeded by (seed, epoch): `set_epoch(e)` gives a new, reproducible order.
    With `drop_last=False` the last, partial batch of the shortest set is kept.
    """

    def __init__(self, dataset_sizes: Sequence[int], batch_sizes: Sequence[int], shuffle: bool = True, seed: int = 0,
                 num_replicas: int | None = None, rank: int | None = None, drop_last: bool = True):
        if len(dataset_sizes) != len(batch_sizes):
            raise BadInput(f"{len(dataset_sizes)} dataset sizes but {len(batch_sizes)} batch sizes {list(batch_sizes)}")
        if any(b <= 0 for b in batch_sizes):
            raise BadInput(f"batch sizes must be positive, got {list(batch_sizes)}")
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, {num_replicas})")
        self.dataset_sizes = [int(n) for n in dataset_sizes]
        self.batch_sizes = [int(b) for b in batch_sizes]
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.offsets = np.concatenate(([0], np.cumsum(self.dataset_sizes)[:-1])).tolist()
        self.epoch = 0
        shares = [n // num_replicas for n in self.dataset_sizes]
        if drop_last:
            self._len = min(share // b for share, b in zip(shares, self.batch_sizes))
        else:
            self._len = min(-(-share // b) for share, b in zip(shares, self.batch_sizes))
        self._shares = shares

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self._len

    def _rank_indices(self) -> list[torch.Tensor]:
        """This rank's (shuffled) share of each set, as global ConcatDataset indices."""
        generator = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        indices = []
        for size, share, offset in zip(self.dataset_sizes, self._shares, self.offsets):
            order = torch.randperm(size, generator=generator) if self.shuffle else torch.arange(size)
            mine = order[: share * self.num_replicas][self.rank::self.num_replicas]
            indices.append(mine + offset)
        return indices

    def __iter__(self) -> Iterator[list[int]]:
        indices = self._rank_indices()
        for batch in range(self._len):
            parts = [idx[batch * b:(batch + 1) * b] for idx, b in zip(indices, self.batch_sizes)]
            yield torch.cat(parts).tolist()
